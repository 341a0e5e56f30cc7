/* exec.bpf.c - program execution.
 *
 * Hooks:
 *   syscalls:sys_enter_execve / sys_enter_execveat   stash fd, flags, filename and argv pointers
 *   sched:sched_process_exec                          successful exec: the resolved file name from
 *       the tracepoint (kernel memory, never empty) and argv read from the new process's stack
 *       (pt_regs->sp via bpf_task_pt_regs(bpf_get_current_task_btf())), so string literals in a
 *       parent's not-yet-faulted pages cannot make argv empty (the enter hook often reads nothing
 *       in a fork+exec loop); from the environment that follows, the LD_* variables (envc)
 *   syscalls:sys_exit_execve / sys_exit_execveat      failed exec: errno, path and argv read from
 *       the caller, whose pages the kernel just faulted in
 * Kill policy (kill_cfg of the scope): SIGKILL from bpf_send_signal here, before the new image
 *       runs one instruction, and before any ring-buffer reserve (a full ring cannot let it
 *       escape); the record has EXEC_KILLED. KILL_MEMFD_EXEC: an exec from a memfd;
 *       KILL_UNLINKED_EXEC: from an O_TMPFILE fd or an fd whose path was unlinked (a dropper
 *       running /proc/self/fd/N); KILL_SHELL_SOCKET: a shell or interpreter (task name in
 *       shell_comms) with an inet/inet6 socket on fd 0 or 1, or any program with such sockets
 *       on both, connected or accepted, by itself or by its parent before the fork: a reverse
 *       or bind shell dies before its first byte.
 *   execveat(dirfd, "name"): the kernel's "/dev/fd/N/name" joined to the directory's path when
 *       its open was seen in scope (dir_fds, file.bpf.c)
 * Why: sched_process_exec is the one point where the kernel has resolved the binary.
 * Blind spots: argv past MAX_ARGS strings or ARGS_BUF bytes (flagged truncated); LD_* variables
 * past the first ENV_SCAN environment strings or past the room argv left, and the environment
 * of a failed exec; without kernel
 * BTF (NO_TASK_BTF) argv of successful execs is empty; a binary started by the kernel itself
 * (usermode helpers) has no enter stash, so fd-based flags are missing for it; a shell under
 * another name (a script named build.py) with a socket on only one of fds 0 and 1, or with a
 * pty between it and the socket, is not a "shell on a socket" (the dup of the socket by the
 * interpreter holding it is: net.bpf.c); an unlinked
 * file is recognised only when it was opened with write intent and unlinked by the same path.
 */
#include "scope.h"

#define AT_FDCWD_VALUE (-100)
#define AT_EMPTY_PATH_FLAG 0x1000

/* Returns how many strings it copied. Copies up to MAX_ARGS strings from the user array of pointers `argv` into e->args. */
static __always_inline __u32 read_argv(struct exec_event *e, __u64 argv)
{
    __u32 off = 0, count = 0;
    e->args_len = 0;
    if (!argv)
        return 0;
#pragma unroll
    for (int i = 0; i < MAX_ARGS; i++) {
        __u64 ptr = 0;
        if (bpf_probe_read_user(&ptr, sizeof(ptr), (void *)(argv + i * 8)) || !ptr)
            goto done;
        if (off >= ARGS_ROOM) {
            e->flags |= EXEC_ARGS_TRUNCATED;
            goto done;
        }
        int n = bpf_probe_read_user_str(&e->args[off], ARG_LEN, (void *)ptr);
        if (n <= 0)
            goto done;
        if (n == ARG_LEN)
            e->flags |= EXEC_ARGS_TRUNCATED;
        off += n;
        count++;
    }
    /* more than MAX_ARGS pointers? */
    {
        __u64 ptr = 0;
        if (!bpf_probe_read_user(&ptr, sizeof(ptr), (void *)(argv + MAX_ARGS * 8)) && ptr)
            e->flags |= EXEC_ARGS_TRUNCATED;
    }
done:
    e->args_len = off;
    return count;
}

/* The dynamic loader's variables from the new process's environment (envp follows argv's
 * NULL on the new stack): LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT... change what code runs in the
 * program, and exist nowhere else in the events. The first ENV_SCAN pointers are looked at
 * (two small reads each), at most ENV_KEEP strings starting "LD_" are appended to e->args
 * after argv's, in the room argv left. Returns how many were kept. */
#define ENV_SCAN 128
#define ENV_KEEP 4
/* copy one environment string into e->args at *off (0 when there is no room or no string) */
static __always_inline __u32 copy_env(struct exec_event *e, __u32 *off, __u64 ptr)
{
    if (!ptr)
        return 0;
    __u32 o = *off;
    if (o >= ARGS_ROOM) {
        e->flags |= EXEC_ARGS_TRUNCATED;
        return 0;
    }
    int n = bpf_probe_read_user_str(&e->args[o], ARG_LEN, (void *)ptr);
    if (n <= 0)
        return 0;
    *off = o + n;
    return 1;
}

static __always_inline __u32 read_loader_env(struct exec_event *e, __u64 envp)
{
    /* first the pointers (a bounded loop: few verifier states, the four slots only fill),
     * then the strings (four copies, unrolled) */
    __u64 p0 = 0, p1 = 0, p2 = 0, p3 = 0;
#pragma clang loop unroll(disable)
    for (int i = 0; i < ENV_SCAN; i++) {
        __u64 ptr = 0;
        if (bpf_probe_read_user(&ptr, sizeof(ptr), (void *)(envp + i * 8)) || !ptr)
            break;
        char head[4] = {};
        if (bpf_probe_read_user(head, 3, (void *)ptr) || head[0] != 'L' || head[1] != 'D' || head[2] != '_')
            continue;
        if (!p0) {
            p0 = ptr;
        } else if (!p1) {
            p1 = ptr;
        } else if (!p2) {
            p2 = ptr;
        } else {
            p3 = ptr;
            break;
        }
    }
    __u32 off = e->args_len, kept = 0;
    kept += copy_env(e, &off, p0);
    kept += copy_env(e, &off, p1);
    kept += copy_env(e, &off, p2);
    kept += copy_env(e, &off, p3);
    e->args_len = off;
    return kept;
}

/* EXEC_VIA_FD, plus EXEC_FROM_MEMFD / EXEC_FROM_TMPFILE when this process (or its parent,
 * before fork) got the fd from memfd_create / open(O_TMPFILE), or EXEC_UNLINKED when the fd
 * was opened (with write intent, in scope) on a path unlinked since */
static __always_inline __u32 fd_exec_flags(__u32 tgid, int fd)
{
    struct fd_key k = {.tgid = tgid, .fd = fd};
    __u32 *anon = memfds.lookup(&k);
    __u32 *pp = parents.lookup(&tgid);
    if (!anon && pp) {
        k.tgid = *pp;
        anon = memfds.lookup(&k);
    }
    if (anon)
        return EXEC_VIA_FD | (*anon == ANON_TMPFILE ? EXEC_FROM_TMPFILE : EXEC_FROM_MEMFD);
    k.tgid = tgid;
    struct file_fd *ff = fd_files.lookup(&k);
    if (!file_entry_open(ff) && pp) {
        k.tgid = *pp;
        ff = fd_files.lookup(&k);
    }
    if (file_entry_open(ff) && unlinked_paths.lookup(&ff->key.path_hash))
        return EXEC_VIA_FD | EXEC_UNLINKED;
    return EXEC_VIA_FD;
}

/* execveat(dirfd, "name", 0): the kernel names the file "/dev/fd/<dirfd>/name". When the
 * directory's open was seen in scope (dir_fds: an O_DIRECTORY or O_PATH open by file.bpf.c, the
 * process's own or its parent's before the fork), its path takes the place of "/dev/fd/<dirfd>",
 * so a rule on the program's path sees it. `kname` is the kernel's name (tracepoint data). */
static __always_inline void exec_dir_join(struct exec_event *e, __u32 tgid, int dirfd, const char *kname)
{
    if (dirfd < 0 || dirfd > 99999)
        return;
    char *f = e->filename;
    if (f[0] != '/' || f[1] != 'd' || f[2] != 'e' || f[3] != 'v' || f[4] != '/' || f[5] != 'f' ||
        f[6] != 'd' || f[7] != '/')
        return;
    __u32 slash = 8 + (dirfd < 10 ? 1 : dirfd < 100 ? 2 : dirfd < 1000 ? 3 : dirfd < 10000 ? 4 : 5);
    if (f[slash & 15] != '/')
        return;
    struct fd_key k = {.tgid = tgid, .fd = dirfd};
    struct dir_path *d = dir_fds.lookup(&k);
    __u32 *pp = d ? 0 : parents.lookup(&tgid);
    if (pp) {
        k.tgid = *pp;
        d = dir_fds.lookup(&k);
    }
    if (!d)
        return;
    __u32 off = d->len;
    if (off == 0 || off >= PATH_LEN - 1)
        return;
    asm volatile("" : "+r"(off));   /* keep the mask: the verifier needs it, clang drops it */
    off &= (PATH_LEN - 1);
    __builtin_memcpy(f, d->path, PATH_LEN);
    /* "/name" after the directory; the copy may run on into args, which argv fills later */
    bpf_probe_read_kernel_str(f + off, PATH_LEN, kname + (slash & 15));
    if (f[PATH_LEN - 1])
        e->flags |= EXEC_FILENAME_TRUNCATED;
    f[PATH_LEN - 1] = 0;
}

#ifdef TP_syscalls__sys_enter_execve
TRACEPOINT_PROBE(syscalls, sys_enter_execve)
{
    __u64 scope_id = 0;
    if (!in_scope(&scope_id))
        return 0;
    stash(ST_EXEC, scope_id, (__u64)(__s64)AT_FDCWD_VALUE, 0, (__u64)args->filename, (__u64)args->argv);
    return 0;
}
#endif

#ifdef TP_syscalls__sys_enter_execveat
TRACEPOINT_PROBE(syscalls, sys_enter_execveat)
{
    __u64 scope_id = 0;
    if (!in_scope(&scope_id))
        return 0;
    stash(ST_EXEC, scope_id, (__u64)(__s64)args->fd, (__u64)args->flags, (__u64)args->filename,
          (__u64)args->argv);
    return 0;
}
#endif

static __always_inline int exec_failed(long ret)
{
    struct inflight s;
    if (ret >= 0 || !unstash(ST_EXEC, &s))
        return 0;
    struct exec_event *e;
    if (!(e = reserve_hi(sizeof(*e), EVT_EXEC, s.scope_id)))
        return 0;
    fill_hdr(&e->hdr, EVT_EXEC, s.scope_id);
    e->ret = ret;
    e->fd = (__s32)s.a[0];
    e->flags = EXEC_ARGS_FROM_CALLER;
    e->envc = 0;
    e->filename[0] = 0;
    int n = bpf_probe_read_user_str(e->filename, PATH_LEN, (void *)s.a[2]);
    if (n == PATH_LEN)
        e->flags |= EXEC_FILENAME_TRUNCATED;
    e->argc = read_argv(e, s.a[3]);
    events_hi.ringbuf_submit(e, WAKE_NOW);
    return 0;
}

#ifdef TP_syscalls__sys_exit_execve
TRACEPOINT_PROBE(syscalls, sys_exit_execve)
{
    return exec_failed(args->ret);
}
#endif

#ifdef TP_syscalls__sys_exit_execveat
TRACEPOINT_PROBE(syscalls, sys_exit_execveat)
{
    return exec_failed(args->ret);
}
#endif

#ifdef TP_sched__sched_process_exec
TRACEPOINT_PROBE(sched, sched_process_exec)
{
    struct inflight s = {};
    /* the calling thread's stash (it is still the same task after a non-leader exec) */
    int have_stash = unstash(ST_EXEC, &s);
    __u64 scope_id = s.scope_id;
    if (!have_stash && !in_scope(&scope_id))
        return 0;

    /* the kill decision comes first and needs no ring-buffer space */
    __u32 tgid = current_tgid();
    __u32 eflags = 0;
    /* stdio before the new generation: a parent's socket counts if it predates the fork */
    __u32 net_in = 0, net_out = 0;
    if (stdio_net(tgid, 0))
        net_in = 1;
    asm volatile("" : "+r"(net_in));   /* a flag, not the pointer: no |= on pointers */
    if (stdio_net(tgid, 1))
        net_out = 1;
    asm volatile("" : "+r"(net_out));
    /* a socket another process of the scope just installed here (seccomp ADDFD) */
    __u32 added = (net_in & net_out) ? 0 : addfd_stdio(scope_id);
    asm volatile("" : "+r"(added));
    net_in |= added & 1;
    net_out |= (added >> 1) & 1;
    if (net_in | net_out)
        eflags |= EXEC_STDIO_SOCKET;
    new_fd_gen(tgid);   /* fds exec closed (O_CLOEXEC) must not be taken for live ones */
    int fd = -1;
    if (have_stash && (s.a[1] & AT_EMPTY_PATH_FLAG)) {
        fd = (__s32)s.a[0];
    } else {
        char head[FD_PATH_HEAD] = {};
        unsigned short loc0 = args->data_loc_filename & 0xFFFF;
        bpf_probe_read_kernel_str(head, sizeof(head), (void *)args + loc0);
        fd = fd_from_path(head);
    }
    if (fd >= 0)
        eflags |= fd_exec_flags(tgid, fd);
    __u32 kill = kill_flags(scope_id);
    if (kill) {
        if ((eflags & EXEC_FROM_MEMFD) && (kill & KILL_MEMFD_EXEC)) {
            kill_current(KILL_REASON_MEMFD_EXEC);
            eflags |= EXEC_KILLED;
        } else if ((eflags & (EXEC_FROM_TMPFILE | EXEC_UNLINKED)) && (kill & KILL_UNLINKED_EXEC)) {
            kill_current(KILL_REASON_UNLINKED_EXEC);
            eflags |= EXEC_KILLED;
        } else if ((eflags & EXEC_STDIO_SOCKET) && (kill & KILL_SHELL_SOCKET) &&
                   ((net_in && net_out) || comm_is_shell())) {
            kill_current(KILL_REASON_SHELL_SOCKET);
            eflags |= EXEC_KILLED;
        }
    }

    struct exec_event *e;
    if (!(e = reserve_hi(sizeof(*e), EVT_EXEC, scope_id)))
        return 0;
    fill_hdr(&e->hdr, EVT_EXEC, scope_id);
    e->ret = 0;
    e->flags = eflags;
    e->envc = 0;
    e->fd = have_stash ? (__s32)s.a[0] : AT_FDCWD_VALUE;
    e->filename[0] = 0;
    unsigned short loc = args->data_loc_filename & 0xFFFF;
    int n = bpf_probe_read_kernel_str(e->filename, PATH_LEN, (void *)args + loc);
    if (n == PATH_LEN)
        e->flags |= EXEC_FILENAME_TRUNCATED;
    if (have_stash && !(s.a[1] & AT_EMPTY_PATH_FLAG))
        exec_dir_join(e, tgid, (__s32)s.a[0], (const char *)args + loc);
#ifndef NO_TASK_BTF
    struct task_struct *task = (struct task_struct *)bpf_get_current_task_btf();
    struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
    __u64 usp = 0, argc = 0;
    bpf_probe_read_kernel(&usp, sizeof(usp), &regs->sp);
    bpf_probe_read_user(&argc, sizeof(argc), (void *)usp);
    e->argc = (__u32)argc;
    read_argv(e, usp + 8);
    e->envc = read_loader_env(e, usp + 8 + 8 * (argc + 1));
#else
    e->argc = 0;
    e->args_len = 0;
#endif
    events_hi.ringbuf_submit(e, WAKE_NOW);
    return 0;
}
#endif
