/* pipe.bpf.c - pipes and ptys: which process holds which end, so a shell fed through a pipe,
 * a fifo or a pty by a process holding a network socket is a relation user space can see.
 *
 * Hooks:
 *   syscalls:sys_enter/exit_pipe, pipe2   both ends, read from the caller's array on exit; the
 *       pair gets a fresh id (chan_new_id) and EVT_CHAN op pipe names both fds
 *   syscalls:sys_enter/exit_socketpair    AF_UNIX pairs the same way (EVT_CHAN op socketpair,
 *       both ends CHAN_RDWR): how libuv, Bun and socat give a child its stdio, and a closed
 *       socket's fd number that a pair reuses must not pass for that socket
 *   syscalls:sys_enter/exit_ioctl         TIOCGPTN and TIOCGPTPEER only, on an fd that is a pty;
 *                                         and SECCOMP_IOCTL_NOTIF_ADDFD (an fd put in another process)
 *       master opened in scope: TIOCGPTN tells the pty's number (kept in pty_ids, so an open of
 *       /dev/pts/N finds its master, file.bpf.c), TIOCGPTPEER opens the slave without a path
 *       (glibc's openpty, Python's pty module) and is sent as EVT_CHAN op ptpeer
 * Opens of /dev/ptmx, /dev/pts/N and of fifos made in scope are in file.bpf.c (open exit, mknod),
 * copies by dup/dup2/dup3/fcntl in net.bpf.c, forgetting at close in io.bpf.c (fd_forget); a
 * child finds its parent's ends made before it forked (chan_get in scope.h).
 * Why: struct file cannot be read here (no matching kernel headers), so the ends are linked by
 * our own ids: what the kernel does not show (an fd passed over SCM_RIGHTS whose message was not
 * matched, see scm_msgs in scope.h; a fifo opened under another name or made before the watcher, a pty whose master was opened out of scope,
 * /proc/PID/fd reopens) is not linked. Ends of a process inherited at fds past its parent's
 * (a grandparent's pipe) are not found by the child's own lookups; user space keeps them
 * from the events (events/proctable.py).
 * Cost out of scope: pipe/pipe2 one scope check; ioctl three comparisons of the command.
 */
#include "scope.h"

#define TIOCGPTN_V 0x80045430U
#define TIOCGPTPEER_V 0x5441U

static __always_inline void pipe_enter(__u64 fildes)
{
    __u64 scope_id = 0;
    if (in_scope(&scope_id))
        stash(ST_PIPE, scope_id, fildes, 0, 0, 0);
}

/* Both ends of a new pipe or socketpair (read from the caller's int[2] stashed in a[0]) get
 * one fresh id: fd[0] end0, fd[1] end1. */
static __always_inline void pair_exit(__u32 stashed, long ret, __u32 kind, __u32 op, __u32 end0,
                                      __u32 end1)
{
    struct inflight s;
    if (!unstash(stashed, &s) || ret < 0)
        return;
    int fds[2] = {-1, -1};
    if (bpf_probe_read_user(fds, sizeof(fds), (void *)s.a[0]))
        return;
    __u32 tgid = current_tgid();
    struct chan_info ci = {.id = chan_new_id(), .kind = kind, .end = end1};
    fd_forget(tgid, fds[1]);
    chan_put(tgid, fds[1], &ci);
    ci.end = end0;
    fd_forget(tgid, fds[0]);
    chan_put(tgid, fds[0], &ci);
    chan_event_send(s.scope_id, ret, fds[0], fds[1], op, 0xffffffffU, &ci);
}

static __always_inline void pipe_exit(long ret)
{
    pair_exit(ST_PIPE, ret, CHAN_PIPE, CHAN_OP_PIPE, CHAN_READ, CHAN_WRITE);
}

#ifdef TP_syscalls__sys_enter_pipe
TRACEPOINT_PROBE(syscalls, sys_enter_pipe)
{
    pipe_enter((__u64)args->fildes);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_exit_pipe
TRACEPOINT_PROBE(syscalls, sys_exit_pipe)
{
    pipe_exit(args->ret);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_enter_pipe2
TRACEPOINT_PROBE(syscalls, sys_enter_pipe2)
{
    pipe_enter((__u64)args->fildes);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_exit_pipe2
TRACEPOINT_PROBE(syscalls, sys_exit_pipe2)
{
    pipe_exit(args->ret);
    return 0;
}
#endif

#define AF_UNIX_PAIR 1
#ifdef TP_syscalls__sys_enter_socketpair
TRACEPOINT_PROBE(syscalls, sys_enter_socketpair)
{
    if (args->family != AF_UNIX_PAIR)
        return 0;
    __u64 scope_id = 0;
    if (in_scope(&scope_id))
        stash(ST_SOCKPAIR, scope_id, (__u64)args->usockvec, 0, 0, 0);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_exit_socketpair
TRACEPOINT_PROBE(syscalls, sys_exit_socketpair)
{
    pair_exit(ST_SOCKPAIR, args->ret, CHAN_SOCKPAIR, CHAN_OP_SOCKPAIR, CHAN_RDWR, CHAN_RDWR);
    return 0;
}
#endif

/* SECCOMP_IOCTL_NOTIF_ADDFD (a seccomp supervisor installing one of its fds in the process
 * whose system call it holds): reported as EVT_PRIV op PRIV_SECCOMP_ADDFD; a network socket
 * installed on fd 0-2 is noted for the scope (addfd_pending), so the shell the target execs
 * counts as one with a socket on its stdio. */
#define SECCOMP_IOCTL_NOTIF_ADDFD_V 0x40182103u
#define SECCOMP_ADDFD_FLAG_SETFD_V 1u
struct notif_addfd {
    __u64 id;
    __u32 flags, srcfd, newfd, newfd_flags;
};

static __always_inline void seccomp_addfd(__u64 arg)
{
    __u64 scope_id = 0;
    if (!in_scope(&scope_id))
        return;
    struct notif_addfd a = {};
    if (bpf_probe_read_user(&a, sizeof(a), (void *)arg))
        return;
    __u32 newfd = (a.flags & SECCOMP_ADDFD_FLAG_SETFD_V) ? a.newfd : 0xffffffffU;
    struct sock_info *si = sock_get(current_tgid(), (int)a.srcfd);
    int net = si && (si->family == AF_INET_V || si->family == AF_INET6_V);
    if (net) {
        /* this install's fds, with those of one still within the window */
        struct addfd_note note = {.ts = bpf_ktime_get_ns(),
                                  .fds = newfd <= 2 ? (1u << newfd) : (newfd == 0xffffffffU ? 7u : 0u)};
        note.fds |= addfd_stdio(scope_id);
        addfd_pending.update(&scope_id, &note);
    }
    struct priv_event *e = priv_reserve(1, scope_id, 0, PRIV_SECCOMP_ADDFD, a.srcfd, newfd);
    if (!e)
        return;
    if (net)
        __builtin_memcpy(e->str, "socket", 7);
    events_hi.ringbuf_submit(e, WAKE_NOW);
}

#ifdef TP_syscalls__sys_enter_ioctl
TRACEPOINT_PROBE(syscalls, sys_enter_ioctl)
{
    __u32 cmd = (__u32)args->cmd;
    if (cmd == SECCOMP_IOCTL_NOTIF_ADDFD_V) {
        seccomp_addfd((__u64)args->arg);
        return 0;
    }
    if (cmd != TIOCGPTN_V && cmd != TIOCGPTPEER_V)
        return 0;
    __u64 scope_id = 0;
    if (in_scope(&scope_id))
        stash(ST_PTY_IOCTL, scope_id, (__u64)args->fd, cmd, (__u64)args->arg, 0);
    return 0;
}
#endif

#ifdef TP_syscalls__sys_exit_ioctl
TRACEPOINT_PROBE(syscalls, sys_exit_ioctl)
{
    struct inflight s;
    long ret = args->ret;
    if (!unstash(ST_PTY_IOCTL, &s) || ret < 0)
        return 0;
    __u32 tgid = current_tgid();
    int master = (int)s.a[0];
    struct chan_info *m = chan_get(tgid, master);
    if (!m || m->kind != CHAN_PTY || m->end != CHAN_MASTER)
        return 0;
    struct chan_info ci = {.id = m->id, .kind = CHAN_PTY, .end = CHAN_SLAVE};
    if ((__u32)s.a[1] == TIOCGPTN_V) {
        struct pty_key k = {.scope_id = s.scope_id};
        if (bpf_probe_read_user(&k.num, sizeof(k.num), (void *)s.a[2]))
            return 0;
        pty_ids.update(&k, &ci.id);
        return 0;
    }
    fd_forget(tgid, (int)ret);
    chan_put(tgid, (int)ret, &ci);
    chan_event_send(s.scope_id, ret, (int)ret, master, CHAN_OP_PTPEER, 0xffffffffU, &ci);
    return 0;
}
#endif
