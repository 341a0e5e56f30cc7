/* priv.bpf.c - privileged and escape-relevant syscalls: ptrace, mount, unshare, setns,
 * module loading, io_uring set-up, memfd_create, setuid.
 *
 * Hooks: syscalls:sys_enter/exit_<name> for each; one EVT_PRIV record per call with the
 * return value, on the high-priority ring. memfd_create also records the new fd in `memfds`
 * so exec.bpf.c can flag an exec from it.
 * Why: these are rare in agent work and each one is a step of an escalation or escape.
 * Blind spots: kernels built without module support have no init_module/finit_module
 * tracepoints (reported as not covered); io_uring operations themselves are not seen.
 */
#include "scope.h"

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
        memfds.update(&k, &one);
    }
    struct priv_event *e;
    if (!(e = reserve_hi(sizeof(*e), EVT_PRIV)))
        return;
    fill_hdr(&e->hdr, EVT_PRIV, s.scope_id);
    e->ret = ret;
    e->op = op;
    e->arg0 = s.a[1];
    e->arg1 = s.a[2];
    e->str[0] = 0;
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

#ifdef TP_syscalls__sys_enter_setuid
TRACEPOINT_PROBE(syscalls, sys_enter_setuid)
{
    priv_enter(PRIV_SETUID, (__u64)args->uid, 0, 0);
    return 0;
}
PRIV_EXIT(setuid)
#endif
