/* priv.bpf.c - privileged and escape-relevant syscalls: ptrace, mount, unshare, setns,
 * module loading, io_uring set-up, memfd_create, setuid.
 *
 * Hooks: syscalls:sys_enter/exit_<name> for each; one EVT_PRIV record per call with the
 * return value, on the high-priority ring. memfd_create also records the new fd in `memfds`
 * so exec.bpf.c can flag an exec from it.
 * Why: these are rare in agent work and each one is a step of an escalation or escape.
 * Also: io_uring_register, process_vm_readv/writev, setxattr/lsetxattr/fsetxattr of
 * security.capability (file capabilities), and init_module/finit_module through the raw
 * tracepoint sys_enter filtered by number where the kernel has no tracepoint for them.
 * And: bpf(), open_by_handle_at/name_to_handle_at, the new mount API (fsopen, fsmount,
 * move_mount, open_tree), pivot_root, chroot, setresuid/setreuid, userfaultfd (PRIV_HOOKS).
 * pidfd_getfd is net.bpf.c's (the copied fd's state follows it); the chown family is
 * file.bpf.c's (EVT_PRIV op PRIV_CHOWN: its path needs that family's dirfd and fd paths).
 * Also setgid, setresgid, setregid and capset (the capability sets asked for), and
 * prctl(PR_SET_NAME) (a task renaming itself after its exec; other prctl options return at
 * their first test).
 * On x86-64 the raw sys_enter hook also takes the entries of openat, open, creat, write, writev,
 * pwrite64, close and connect by number (dispatch_entry, below), for the file, io and net
 * families, whose entry tracepoints then stay detached.
 * Blind spots: io_uring operations are uring.bpf.c's; setxattrat (6.13+), setfsuid/setfsgid,
 * setgroups, keyctl/add_key and mount_setattr are not hooked.
 */
#include "scope.h"
#include <uapi/linux/capability.h>   /* cap_user_header_t, cap_user_data_t: capset's arguments */

static __always_inline void priv_enter(__u32 op, __u64 arg0, __u64 arg1, const void *str)
{
    __u64 scope_id = 0;
    if (in_scope(&scope_id))
        stash(ST_PRIV, scope_id, op, arg0, arg1, (__u64)str);
}

static __always_inline void priv_exit(long ret)
{
    struct inflight s;
    if (!unstash(ST_PRIV, &s))
        return;
    __u32 op = (__u32)s.a[0];
    if (op == PRIV_MEMFD_CREATE && ret >= 0) {
        struct fd_key k = {.tgid = current_tgid(), .fd = (int)ret};
        __u32 one = 1;
        fd_mark(k.tgid, k.fd, FDM_MEMFD);
        memfds.update(&k, &one);
    }
    struct priv_event *e = priv_reserve(1, s.scope_id, ret, op, s.a[1], s.a[2]);
    if (!e)
        return;
    if (s.a[3])
        bpf_probe_read_user_str(e->str, PATH_LEN, (void *)s.a[3]);
    events_hi.ringbuf_submit(e, WAKE_NOW);
}

#define PRIV_EXIT(name)                                                                     \
    TRACEPOINT_PROBE(syscalls, sys_exit_##name)                                             \
    {                                                                                       \
        priv_exit(args->ret);                                                               \
        return 0;                                                                           \
    }

#ifdef TP_syscalls__sys_enter_ptrace
TRACEPOINT_PROBE(syscalls, sys_enter_ptrace)
{
    priv_enter(PRIV_PTRACE, (__u64)args->request, (__u64)args->pid, 0);
    return 0;
}
PRIV_EXIT(ptrace)
#endif

#ifdef TP_syscalls__sys_enter_mount
TRACEPOINT_PROBE(syscalls, sys_enter_mount)
{
    priv_enter(PRIV_MOUNT, (__u64)args->flags, 0, args->dir_name);
    return 0;
}
PRIV_EXIT(mount)
#endif

#ifdef TP_syscalls__sys_enter_unshare
TRACEPOINT_PROBE(syscalls, sys_enter_unshare)
{
    priv_enter(PRIV_UNSHARE, (__u64)args->unshare_flags, 0, 0);
    return 0;
}
PRIV_EXIT(unshare)
#endif

#ifdef TP_syscalls__sys_enter_setns
TRACEPOINT_PROBE(syscalls, sys_enter_setns)
{
    priv_enter(PRIV_SETNS, (__u64)args->fd, (__u64)args->flags, 0);
    return 0;
}
PRIV_EXIT(setns)
#endif

#ifdef TP_syscalls__sys_enter_init_module
TRACEPOINT_PROBE(syscalls, sys_enter_init_module)
{
    priv_enter(PRIV_INIT_MODULE, (__u64)args->len, 0, args->uargs);
    return 0;
}
PRIV_EXIT(init_module)
#endif

#ifdef TP_syscalls__sys_enter_finit_module
TRACEPOINT_PROBE(syscalls, sys_enter_finit_module)
{
    priv_enter(PRIV_FINIT_MODULE, (__u64)args->fd, (__u64)args->flags, args->uargs);
    return 0;
}
PRIV_EXIT(finit_module)
#endif

#ifdef TP_syscalls__sys_enter_io_uring_setup
TRACEPOINT_PROBE(syscalls, sys_enter_io_uring_setup)
{
    priv_enter(PRIV_IO_URING_SETUP, (__u64)args->entries, 0, 0);
    return 0;
}
PRIV_EXIT(io_uring_setup)
#endif

#ifdef TP_syscalls__sys_enter_memfd_create
TRACEPOINT_PROBE(syscalls, sys_enter_memfd_create)
{
    priv_enter(PRIV_MEMFD_CREATE, (__u64)args->flags, 0, args->uname);
    return 0;
}
PRIV_EXIT(memfd_create)
#endif

/* prctl(PR_SET_NAME, name): the name `ps`, `top` and every comm-based record show from now on
 * (a python calling itself kworker/0:2H). The exec's name stays the process's name in the
 * rules; the new one is the record's str, read at the exit (the kernel copied it by then). */
#define PR_SET_NAME_V 15
#ifdef TP_syscalls__sys_enter_prctl
TRACEPOINT_PROBE(syscalls, sys_enter_prctl)
{
    if (args->option == PR_SET_NAME_V)
        priv_enter(PRIV_SET_NAME, 0, 0, (const void *)args->arg2);
    return 0;
}
PRIV_EXIT(prctl)
#endif

#ifdef TP_syscalls__sys_enter_setuid
TRACEPOINT_PROBE(syscalls, sys_enter_setuid)
{
    priv_enter(PRIV_SETUID, (__u64)args->uid, 0, 0);
    return 0;
}
PRIV_EXIT(setuid)
#endif

#ifdef TP_syscalls__sys_enter_io_uring_register
TRACEPOINT_PROBE(syscalls, sys_enter_io_uring_register)
{
    priv_enter(PRIV_IO_URING_REGISTER, (__u64)args->fd, (__u64)args->opcode, 0);
    return 0;
}
PRIV_EXIT(io_uring_register)
#endif

/* One EVT_PRIV per call of a system call with no state to keep: PRIV_HOOKS(name, op, arg0,
 * arg1, user string or 0), the arguments as expressions over the tracepoint's `args`. */
#define PRIV_HOOKS(name, op, a0, a1, str)                                                   \
    TRACEPOINT_PROBE(syscalls, sys_enter_##name)                                            \
    {                                                                                       \
        priv_enter(op, (__u64)(a0), (__u64)(a1), (str));                                    \
        return 0;                                                                           \
    }                                                                                       \
    PRIV_EXIT(name)

/* bpf() from a traced process: programs that could blind or subvert these probes */
#if defined(TP_syscalls__sys_enter_bpf) && defined(TP_syscalls__sys_exit_bpf)
PRIV_HOOKS(bpf, PRIV_BPF, args->cmd, args->size, 0)
#endif
/* opens by file handle bypass every path (open_by_handle_at needs CAP_DAC_READ_SEARCH: the
 * "shocker" container escape reads host files so) */
#if defined(TP_syscalls__sys_enter_open_by_handle_at) && defined(TP_syscalls__sys_exit_open_by_handle_at)
PRIV_HOOKS(open_by_handle_at, PRIV_OPEN_BY_HANDLE_AT, args->mountdirfd, args->flags, 0)
#endif
#if defined(TP_syscalls__sys_enter_name_to_handle_at) && defined(TP_syscalls__sys_exit_name_to_handle_at)
PRIV_HOOKS(name_to_handle_at, PRIV_NAME_TO_HANDLE_AT, args->dfd, args->flag, args->name)
#endif
/* the new mount API: mounts made with no mount() call */
#if defined(TP_syscalls__sys_enter_fsopen) && defined(TP_syscalls__sys_exit_fsopen)
PRIV_HOOKS(fsopen, PRIV_FSOPEN, args->flags, 0, args->_fs_name)
#endif
#if defined(TP_syscalls__sys_enter_fsmount) && defined(TP_syscalls__sys_exit_fsmount)
PRIV_HOOKS(fsmount, PRIV_FSMOUNT, args->flags, args->attr_flags, 0)
#endif
#if defined(TP_syscalls__sys_enter_move_mount) && defined(TP_syscalls__sys_exit_move_mount)
PRIV_HOOKS(move_mount, PRIV_MOVE_MOUNT, args->flags, args->to_dfd, args->to_pathname)
#endif
#if defined(TP_syscalls__sys_enter_open_tree) && defined(TP_syscalls__sys_exit_open_tree)
PRIV_HOOKS(open_tree, PRIV_OPEN_TREE, args->flags, args->dfd, args->filename)
#endif
#if defined(TP_syscalls__sys_enter_pivot_root) && defined(TP_syscalls__sys_exit_pivot_root)
PRIV_HOOKS(pivot_root, PRIV_PIVOT_ROOT, 0, 0, args->new_root)
#endif
#if defined(TP_syscalls__sys_enter_chroot) && defined(TP_syscalls__sys_exit_chroot)
PRIV_HOOKS(chroot, PRIV_CHROOT, 0, 0, args->filename)
#endif
/* the other ways to change user ids (setuid() is above); (uid_t)-1 leaves an id unchanged */
#if defined(TP_syscalls__sys_enter_setresuid) && defined(TP_syscalls__sys_exit_setresuid)
PRIV_HOOKS(setresuid, PRIV_SETRESUID, args->ruid, args->euid, 0)
#endif
#if defined(TP_syscalls__sys_enter_setreuid) && defined(TP_syscalls__sys_exit_setreuid)
PRIV_HOOKS(setreuid, PRIV_SETREUID, args->ruid, args->euid, 0)
#endif
#if defined(TP_syscalls__sys_enter_setgid) && defined(TP_syscalls__sys_exit_setgid)
PRIV_HOOKS(setgid, PRIV_SETGID, args->gid, 0, 0)
#endif
#if defined(TP_syscalls__sys_enter_setresgid) && defined(TP_syscalls__sys_exit_setresgid)
PRIV_HOOKS(setresgid, PRIV_SETRESGID, args->rgid, args->egid, 0)
#endif
#if defined(TP_syscalls__sys_enter_setregid) && defined(TP_syscalls__sys_exit_setregid)
PRIV_HOOKS(setregid, PRIV_SETREGID, args->rgid, args->egid, 0)
#endif
/* capset: the sets asked for, from the caller's two struct __user_cap_data_struct (effective,
 * permitted, inheritable: 32 bits each, the second struct the high halves), read on entry */
#if defined(TP_syscalls__sys_enter_capset) && defined(TP_syscalls__sys_exit_capset)
TRACEPOINT_PROBE(syscalls, sys_enter_capset)
{
    __u64 scope_id = 0;
    if (!in_scope(&scope_id))
        return 0;
    __u32 d[6] = {};
    if (args->data)
        bpf_probe_read_user(d, sizeof(d), (void *)args->data);
    stash(ST_PRIV, scope_id, PRIV_CAPSET, ((__u64)d[3] << 32) | d[0], ((__u64)d[4] << 32) | d[1], 0);
    return 0;
}
PRIV_EXIT(capset)
#endif
/* userfaultfd: the page-fault stalling primitive of kernel race exploits */
#if defined(TP_syscalls__sys_enter_userfaultfd) && defined(TP_syscalls__sys_exit_userfaultfd)
PRIV_HOOKS(userfaultfd, PRIV_USERFAULTFD, args->flags, 0, 0)
#endif

/* ---- another process's memory ---- */
#ifdef TP_syscalls__sys_enter_process_vm_readv
TRACEPOINT_PROBE(syscalls, sys_enter_process_vm_readv)
{
    priv_enter(PRIV_PROCESS_VM_READV, (__u64)args->pid, (__u64)args->riovcnt, 0);
    return 0;
}
PRIV_EXIT(process_vm_readv)
#endif

#ifdef TP_syscalls__sys_enter_process_vm_writev
TRACEPOINT_PROBE(syscalls, sys_enter_process_vm_writev)
{
    priv_enter(PRIV_PROCESS_VM_WRITEV, (__u64)args->pid, (__u64)args->riovcnt, 0);
    return 0;
}
PRIV_EXIT(process_vm_writev)
#endif

/* ---- file capabilities: setxattr of "security.capability" ----
 * In scope, the name is compared on entry (a read of 20 bytes); other attributes cost only
 * that, and processes outside every scope only the scope check. The record's str is the
 * file's path (fd for fsetxattr: arg0). */
static __always_inline int is_cap_xattr(const char *uname)
{
    /* "security.capability" and its NUL: 20 bytes, compared as words */
    __u64 w[3] = {};
    if (bpf_probe_read_user(w, 20, uname))
        return 0;
    return w[0] == 0x7974697275636573ULL &&        /* "security" */
           w[1] == 0x6c6962617061632eULL &&        /* ".capabil" */
           (w[2] & 0xffffffffULL) == 0x00797469ULL; /* "ity\0" */
}

#define XATTR_HOOKS(sc, fdarg, patharg)                                                     \
    TRACEPOINT_PROBE(syscalls, sys_enter_##sc)                                              \
    {                                                                                       \
        __u64 scope_id = 0;                                                                 \
        if (in_scope(&scope_id) && is_cap_xattr(args->name))                                \
            stash(ST_PRIV, scope_id, PRIV_SET_FILE_CAP, (__u64)(fdarg), (__u64)args->size,  \
                  (__u64)(patharg));                                                        \
        return 0;                                                                           \
    }                                                                                       \
    PRIV_EXIT(sc)

#if defined(TP_syscalls__sys_enter_setxattr) && defined(TP_syscalls__sys_exit_setxattr)
XATTR_HOOKS(setxattr, -100, args->pathname)
#endif
#if defined(TP_syscalls__sys_enter_lsetxattr) && defined(TP_syscalls__sys_exit_lsetxattr)
XATTR_HOOKS(lsetxattr, -100, args->pathname)
#endif
#if defined(TP_syscalls__sys_enter_fsetxattr) && defined(TP_syscalls__sys_exit_fsetxattr)
XATTR_HOOKS(fsetxattr, args->fd, 0)
#endif

/* ---- system calls without a tracepoint of their own on this kernel ----
 * A system call has no syscalls:* tracepoint when the kernel was built without it (modules:
 * CONFIG_MODULES=n); it is then sys_ni_syscall and fails with ENOSYS, every time. So the
 * attempt is what there is to report, and the generic sys_enter hook alone is attached: it runs
 * for every system call of the machine. It is a raw tracepoint, not the raw_syscalls:sys_enter
 * perf tracepoint: that one builds a trace record (number and six arguments) for every system
 * call before any program runs; the raw one hands the program the number as it is, and the
 * program looks the number up first (syscall_marks: an inlined array look-up; only the marked
 * numbers reach the scope check). The record is sent from the entry with errno ENOSYS.
 * NR_INIT_MODULE and NR_FINIT_MODULE come from the loader (-D, per architecture), which marks
 * them only when syscalls:sys_enter_init_module is missing; the hook is attached then, and on
 * x86-64 always, for the 32-bit calls below (coi_sentinel/probes/hooks.py RAW_TRACEPOINTS
 * names it raw_syscalls:sys_enter).
 *
 * Arguments: ctx->args[0] is the caller's saved user registers (struct pt_regs *), read with
 * bpf_probe_read_kernel and only for the marked numbers in scope. Their order is user ABI, not a kernel
 * internal: on x86-64 it is the struct pt_regs of the uapi <asm/ptrace.h>, which ptrace's
 * PTRACE_PEEKUSER reads by indexing the saved registers at user_regs_struct offsets; on arm64
 * the saved registers begin with the uapi struct user_pt_regs. PT_REGS_PARM1-3 name the first
 * three system-call arguments in both (rdi, rsi, rdx; x0, x1, x2). */
#define ENOSYS_V 38

/* 32-bit system calls (x86-64 "compat": int 0x80, sysenter, or a 32-bit program; and the x32
 * ABI) never reach a syscalls:* tracepoint: the kernel's syscall events skip them. So a 64-bit
 * program could open a socket, connect and dup2 it onto stdin with `int $0x80` and exec a shell
 * that no hook saw coming. The generic hook sees every system call with its number, so the
 * numbers such calls use (syscall_marks, filled by the loader from hooks.COMPAT_SYSCALLS: the
 * socket family, dup, openat, ptrace, memfd, setuid...; numbers whose 64-bit meaning is a
 * common call such as fstat are left out, so a 64-bit program pays one inlined array look-up)
 * reach the scope check, then the test of the saved registers: compat when the code segment is
 * the 32-bit one (sysenter and 32-bit programs: the entry pushes __USER32_CS) or when the two
 * bytes before the return address are not the `syscall` instruction (int 0x80 is cd 80; a
 * 64-bit `syscall` always leaves 0f 05 there). In scope it is reported as EVT_PRIV op
 * PRIV_COMPAT_SYSCALL (arg0 the 32-bit number, arg1 COMPAT_* flags) and, with the scope's
 * KILL_COMPAT_SYSCALL, SIGKILLed here before the call runs. An x32 call (the number has bit
 * 30 set) is one without any register test; the hook sees it before the kernel refuses it
 * where x32 is off, so the attempt is reported as well. */
#define MARK_MODULE 1       /* init_module / finit_module (64-bit numbers) */
#define MARK_COMPAT 2       /* a 32-bit call of interest has this number */
#define MARK_DISPATCH 4     /* a 64-bit call whose entry this program takes (dispatch_entry) */
#define X32_SYSCALL_BIT 0x40000000L
#define USER32_CS 0x23
#define SYSCALL_INSN 0x050f /* 0f 05, little-endian */
BPF_ARRAY(syscall_marks, __u8, 512);

/* The saved user registers from bx to cs (uapi struct pt_regs order, x86-64). */
struct regs_tail {
    __u64 bx, r11, r10, r9, r8, ax, cx, dx, si, di, orig_ax, ip, cs;
};

#if defined(TP_raw_syscalls__sys_enter) && defined(COMPAT_X86)
/* 0: a 64-bit call (`syscall`); 1: a 32-bit call; COMPAT_UNKNOWN: the code page could not be
 * read (gone, or execute-only memory through protection keys): no proof of either */
#define COMPAT_UNKNOWN 2
static __always_inline int compat_call(const struct regs_tail *r)
{
    if ((r->cs & 0xffff) == USER32_CS)
        return 1;
    __u16 insn = 0;
    if (bpf_probe_read_user(&insn, sizeof(insn), (void *)(r->ip - 2)))
        return COMPAT_UNKNOWN;
    return insn != SYSCALL_INSN;
}

static __always_inline void compat_report(__u64 scope_id, long nr, __u32 flags)
{
    if (kill_flags(scope_id) & KILL_COMPAT_SYSCALL) {
        kill_current(KILL_REASON_COMPAT_SYSCALL);
        flags |= COMPAT_KILLED;
    }
    struct priv_event *e = priv_reserve(1, scope_id, 0, PRIV_COMPAT_SYSCALL, (__u64)nr, flags);
    if (e)
        events_hi.ringbuf_submit(e, WAKE_NOW);
}
#endif

/* ---- the entries of the hottest hooked system calls, taken by number ----
 * Each syscalls:sys_enter_* perf tracepoint costs every call of its system call the perf
 * machinery (a trace record of the six arguments, its buffer, the recursion context), scope or
 * not; this program runs on every system call anyway (x86-64: the 32-bit calls). So on x86-64
 * the loader leaves the entry tracepoints of openat, open, creat, write, writev, pwrite64,
 * close and connect detached (hooks.DISPATCHED: they are compiled still, and attached where
 * this program is not) and marks their 64-bit numbers MARK_DISPATCH, passing each number as
 * NR_DISPATCH_<name> for the families loaded. After the scope check and the compat test (a
 * 32-bit call with one of these numbers is another call: i386's 3 is read, not close; the
 * syscalls:* tracepoints skip 32-bit calls too), the same family entry runs with the arguments
 * of the saved registers, read already for that test: rdi, rsi, rdx, r10 (the 4th system-call
 * argument; rcx holds the return address), each cut to the type the tracepoint gives it. The
 * exits stay tracepoints: a raw sys_exit would run on every system call of the machine and
 * read the stash before it could return. */
#if defined(TP_raw_syscalls__sys_enter) && defined(COMPAT_X86) && defined(DISPATCH_ENTRIES)
static __always_inline void dispatch_entry(__u64 scope_id, long id, const struct regs_tail *r)
{
#ifdef NR_DISPATCH_openat
    if (id == NR_DISPATCH_openat) {
        open_stash(scope_id, (int)r->di, (const char *)r->si, (__u64)(int)r->dx, (__u16)r->r10);
        return;
    }
#endif
#ifdef NR_DISPATCH_open
    if (id == NR_DISPATCH_open) {
        open_stash(scope_id, -100, (const char *)r->di, (__u64)(int)r->si, (__u16)r->dx);
        return;
    }
#endif
#ifdef NR_DISPATCH_creat
    if (id == NR_DISPATCH_creat) {
        open_stash(scope_id, -100, (const char *)r->di, O_CREAT_V | O_TRUNC_V | 1, (__u16)r->si);
        return;
    }
#endif
    int write = 0;          /* the write calls share one entry (inlined once) */
#ifdef NR_DISPATCH_write
    write |= id == NR_DISPATCH_write;
#endif
#ifdef NR_DISPATCH_writev
    write |= id == NR_DISPATCH_writev;
#endif
#ifdef NR_DISPATCH_pwrite64
    write |= id == NR_DISPATCH_pwrite64;
#endif
#if defined(NR_DISPATCH_write) || defined(NR_DISPATCH_writev) || defined(NR_DISPATCH_pwrite64)
    if (write) {
        io_enter_scoped(scope_id, (int)r->di);
        return;
    }
#endif
#ifdef NR_DISPATCH_close
    if (id == NR_DISPATCH_close) {
        close_enter(scope_id, (int)r->di);
        return;
    }
#endif
#ifdef NR_DISPATCH_connect
    if (id == NR_DISPATCH_connect)
        connect_enter(scope_id, (int)r->di, r->si, (int)r->dx);
#endif
}
#endif

#if defined(TP_raw_syscalls__sys_enter)
RAW_TRACEPOINT_PROBE(sys_enter)
{
    long id = (long)ctx->args[1];
    __u8 mark;
    if ((unsigned long)id < 512) {
        __u32 k = (__u32)id;
        __u8 *m = syscall_marks.lookup(&k);
        if (!m || !*m)
            return 0;
        mark = *m;
    } else {
#ifdef COMPAT_X86
        if ((id & ~0x3ffL) != X32_SYSCALL_BIT)
            return 0;
        __u64 x32_scope = 0;
        if (in_scope(&x32_scope))
            compat_report(x32_scope, id & 0x3ff, COMPAT_X32);
#endif
        return 0;
    }
    __u64 scope_id = 0;
    if (!in_scope(&scope_id))
        return 0;
    struct pt_regs *regs = (struct pt_regs *)ctx->args[0];
#ifdef COMPAT_X86
    struct regs_tail r = {};
    bpf_probe_read_kernel(&r, sizeof(r), &regs->bx);
    int compat = compat_call(&r);
#ifdef DISPATCH_ENTRIES
    /* not known: the 64-bit entry runs (a 64-bit open or connect unseen would be worse); the
     * call is reported as a 32-bit one as well only when its number is one of interest as a
     * 32-bit call, as below (else the report, and the kill policy's kill, would fall on every
     * write and close of a program whose code is execute-only, for a 32-bit call that, if it
     * were one, matters to no rule) */
    if ((mark & MARK_DISPATCH) && compat != 1) {
        if (compat && (mark & MARK_COMPAT))
            compat_report(scope_id, id, 0);
        dispatch_entry(scope_id, id, &r);
        return 0;
    }
#endif
    if (compat) {           /* a code page not read counts as 32-bit: no proof of `syscall` */
        if (mark & MARK_COMPAT)
            compat_report(scope_id, id, 0);
        return 0;           /* a 32-bit call with a module or dispatched number: not that call */
    }
#endif
#if defined(NR_INIT_MODULE) && defined(NR_FINIT_MODULE)
    if (!(mark & MARK_MODULE) || (id != NR_INIT_MODULE && id != NR_FINIT_MODULE))
        return 0;
    __u64 a0 = 0, a1 = 0, a2 = 0;
    bpf_probe_read_kernel(&a0, sizeof(a0), &PT_REGS_PARM1(regs));
    bpf_probe_read_kernel(&a1, sizeof(a1), &PT_REGS_PARM2(regs));
    bpf_probe_read_kernel(&a2, sizeof(a2), &PT_REGS_PARM3(regs));
    int init = id == NR_INIT_MODULE;
    /* init_module: len, its parameters; finit_module: fd, flags, its parameters */
    struct priv_event *e = priv_reserve(1, scope_id, -ENOSYS_V,
                                        init ? PRIV_INIT_MODULE : PRIV_FINIT_MODULE,
                                        init ? a1 : a0, init ? 0 : a2);
    if (!e)
        return 0;
    bpf_probe_read_user_str(e->str, PATH_LEN, (void *)(init ? a2 : a1));
    events_hi.ringbuf_submit(e, WAKE_NOW);
#endif
    return 0;
}
#endif
