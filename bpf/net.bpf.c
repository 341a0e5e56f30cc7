/* net.bpf.c - outbound connections and sockets moved onto stdio.
 *
 * Hooks:
 *   syscalls:sys_enter_connect / sys_exit_connect   AF_INET, AF_INET6, AF_UNIX destination and
 *       the return value (EINPROGRESS for non-blocking sockets, ENETUNREACH with no route); the
 *       sockaddr is read on exit, after the kernel copied it in. Connected sockets are kept in
 *       sock_fds for dup tracking and byte accounting (io.bpf.c).
 *   syscalls:sys_enter/exit_dup2, dup3, dup          the socket mark follows every copy of the fd;
 *       an fd landing on 0, 1 or 2 is reported, flagged when it is
 *       a socket this process (or its parent, for fork-then-dup shells) connected
 *   Repeats of one inet/inet6 connect (same process, destination and result) are counted in
 *       conn_aggs and reported by user space as EVT_CONNECT_REPEAT: one record per destination.
 *   Kill policy: when the scope asks for it (kill_cfg), a connect to a destination in
 *       blocked_nets / blocked_ports gets SIGKILL from bpf_send_signal on syscall entry, before
 *       the process can use the socket; the record carries CONNECT_KILLED.
 * Why: a reverse shell is a connect plus a dup onto stdio, whatever the binary is called.
 *   syscalls:sys_enter/exit_fcntl (F_DUPFD, F_DUPFD_CLOEXEC only)  the same, for perl & co
 * Blind spots: sockets received over SCM_RIGHTS or accepted (listen/accept);
 * sendto() on unconnected UDP sockets has no connect to report.
 */
#include "scope.h"

#define AF_UNIX_V 1
#define AF_INET_V 2
#define AF_INET6_V 10
#define EINPROGRESS_V 115

static __always_inline int read_sockaddr(struct sock_info *si, char *unix_path, __u64 uaddr, int len)
{
    __u16 family = 0;
    if (!uaddr || bpf_probe_read_user(&family, sizeof(family), (void *)uaddr))
        return -1;
    si->family = family;
    si->pad = 0;
    if (family == AF_INET_V) {
        __u16 port = 0;
        bpf_probe_read_user(&port, 2, (void *)(uaddr + 2));
        si->port = __builtin_bswap16(port);
        bpf_probe_read_user(si->addr, 4, (void *)(uaddr + 4));
    } else if (family == AF_INET6_V) {
        __u16 port = 0;
        bpf_probe_read_user(&port, 2, (void *)(uaddr + 2));
        si->port = __builtin_bswap16(port);
        bpf_probe_read_user(si->addr, 16, (void *)(uaddr + 8));
    } else if (family == AF_UNIX_V) {
        si->port = 0;
        if (unix_path)
            bpf_probe_read_user(unix_path, UNIX_PATH_LEN, (void *)(uaddr + 2));
    } else {
        return -1;
    }
    return 0;
}

/* 1 when the destination is in the scope's blocked nets or ports */
static __always_inline int connect_blocked(__u64 scope_id, __u64 uaddr, int len)
{
    struct sock_info si = {};
    if (read_sockaddr(&si, 0, uaddr, len) < 0 || si.family == AF_UNIX_V)
        return 0;
    struct blocked_port_key pk = {.scope_id = scope_id, .port = si.port};
    if (blocked_ports.lookup(&pk))
        return 1;
    struct blocked_key k = {};
    k.prefixlen = 64 + 8 + (si.family == AF_INET_V ? 32 : 128);
#pragma unroll
    for (int i = 0; i < 8; i++)
        k.scope[i] = (scope_id >> (56 - 8 * i)) & 0xff;
    k.family = (__u8)si.family;
    __builtin_memcpy(k.addr, si.addr, sizeof(k.addr));
    return blocked_nets.lookup(&k) ? 1 : 0;
}

#ifdef TP_syscalls__sys_enter_connect
TRACEPOINT_PROBE(syscalls, sys_enter_connect)
{
    __u64 scope_id = 0;
    if (!in_scope(&scope_id))
        return 0;
    __u64 killed = 0;
    if ((kill_flags(scope_id) & KILL_BLOCKED_CONNECT) &&
        connect_blocked(scope_id, (__u64)args->uservaddr, args->addrlen)) {
        kill_current(KILL_REASON_BLOCKED_CONNECT);
        killed = CONNECT_KILLED;
    }
    stash(ST_CONNECT, scope_id, (__u64)args->fd, (__u64)args->uservaddr, (__u64)args->addrlen, killed);
    return 0;
}
#endif

/* Repeats of one inet connect (same process, destination and result) are counted in
 * conn_aggs instead of sent: a retry or scan loop costs one record per destination. User space
 * reports the counts as EVT_CONNECT_REPEAT. Returns 1 when this connect was a repeat. */
static __always_inline int connect_repeat(struct inflight *s, long ret)
{
    __u16 family = 0;
    __u64 uaddr = s->a[1];
    if (!uaddr || bpf_probe_read_user(&family, sizeof(family), (void *)uaddr))
        return 0;
    if (family != AF_INET_V && family != AF_INET6_V)
        return 0;
    struct conn_key k = {};
    k.tgid = current_tgid();
    k.ret = ret;
    k.family = family;
    struct sock_info si = {};
    if (read_sockaddr(&si, 0, uaddr, (int)s->a[2]) < 0)
        return 0;
    k.port = si.port;
    __builtin_memcpy(k.addr, si.addr, sizeof(k.addr));
    if (ret == 0 || ret == -EINPROGRESS_V)
        sock_put(k.tgid, (__s32)s->a[0], &si);
    __u64 now = bpf_ktime_get_ns();
    struct conn_agg *a = conn_aggs.lookup(&k);
    if (a) {
        __sync_fetch_and_add(&a->count, 1);
        a->last_ts = now;
        return 1;
    }
    struct conn_agg fresh = {};
    fresh.first_ts = now;
    fresh.last_ts = now;
    fresh.scope_id = s->scope_id;
    fresh.cgroup_id = bpf_get_current_cgroup_id();
    fresh.count = 1;
    fresh.uid = (__u32)bpf_get_current_uid_gid();
    if (conn_aggs.update(&k, &fresh))
        count_agg_full(2);
    return 0;
}

#ifdef TP_syscalls__sys_exit_connect
TRACEPOINT_PROBE(syscalls, sys_exit_connect)
{
    struct inflight s;
    if (!unstash(ST_CONNECT, &s))
        return 0;
    if (!s.a[3] && connect_repeat(&s, args->ret))
        return 0;
    struct connect_event *e;
    if (!(e = reserve_hi(sizeof(*e), EVT_CONNECT)))
        return 0;
    __builtin_memset(&e->sock, 0, sizeof(e->sock));
    e->unix_path[0] = 0;
    if (read_sockaddr(&e->sock, e->unix_path, s.a[1], (int)s.a[2]) < 0) {
        events_hi.ringbuf_discard(e, 0);   /* netlink, packet, vsock...: not reported */
        return 0;
    }
    fill_hdr(&e->hdr, EVT_CONNECT, s.scope_id);
    e->ret = args->ret;
    e->fd = (__s32)s.a[0];
    e->flags = (__u32)s.a[3];
    if (e->sock.family == AF_UNIX_V && (e->ret == 0 || e->ret == -EINPROGRESS_V))
        sock_put(e->hdr.pid, e->fd, &e->sock);
    events_hi.ringbuf_submit(e, WAKE_NOW);
    return 0;
}
#endif

static __always_inline void dup_exit(long ret)
{
    struct inflight s;
    if (!unstash(ST_DUP, &s))
        return;
    int oldfd = (int)s.a[0];
    int newfd = ret >= 0 ? (int)ret : (int)s.a[1];
    __u32 tgid = current_tgid();
    struct sock_info *si = sock_get(tgid, oldfd);
    if (!si)
        si = sock_inherited(tgid, oldfd);   /* forked, then dup'ed the parent's socket */
    struct sock_info copy = {};
    if (si)
        __builtin_memcpy(&copy, si, sizeof(copy));
    if (ret >= 0) {
        /* newfd was implicitly closed: whatever it was is gone */
        fd_forget(tgid, newfd);
        if (si)
            sock_put(tgid, newfd, &copy);
    }
    if (newfd < 0 || newfd > 2)
        return;
    struct dup_event *e;
    if (!(e = reserve_hi(sizeof(*e), EVT_DUP)))
        return;
    fill_hdr(&e->hdr, EVT_DUP, s.scope_id);
    e->ret = ret;
    e->oldfd = oldfd;
    e->newfd = newfd;
    e->flags = 0;
    __builtin_memset(&e->sock, 0, sizeof(e->sock));
    if (si) {
        e->flags |= DUP_OLDFD_SOCKET;
        __builtin_memcpy(&e->sock, &copy, sizeof(e->sock));
    }
    events_hi.ringbuf_submit(e, WAKE_NOW);
}

#ifdef TP_syscalls__sys_enter_dup2
TRACEPOINT_PROBE(syscalls, sys_enter_dup2)
{
    __u64 scope_id = 0;
    if (in_scope(&scope_id))
        stash(ST_DUP, scope_id, (__u64)args->oldfd, (__u64)args->newfd, 0, 0);
    return 0;
}
#endif

#ifdef TP_syscalls__sys_exit_dup2
TRACEPOINT_PROBE(syscalls, sys_exit_dup2)
{
    dup_exit(args->ret);
    return 0;
}
#endif

#ifdef TP_syscalls__sys_enter_dup3
TRACEPOINT_PROBE(syscalls, sys_enter_dup3)
{
    __u64 scope_id = 0;
    if (in_scope(&scope_id))
        stash(ST_DUP, scope_id, (__u64)args->oldfd, (__u64)args->newfd, 0, 0);
    return 0;
}
#endif

#ifdef TP_syscalls__sys_exit_dup3
TRACEPOINT_PROBE(syscalls, sys_exit_dup3)
{
    dup_exit(args->ret);
    return 0;
}
#endif

#define F_DUPFD_V 0
#define F_DUPFD_CLOEXEC_V 1030

/* fcntl(F_DUPFD / F_DUPFD_CLOEXEC) duplicates like dup(): perl's open(STDIN, ">&S") uses it */
#ifdef TP_syscalls__sys_enter_fcntl
TRACEPOINT_PROBE(syscalls, sys_enter_fcntl)
{
    if (args->cmd != F_DUPFD_V && args->cmd != F_DUPFD_CLOEXEC_V)
        return 0;
    __u64 scope_id = 0;
    if (in_scope(&scope_id))
        stash(ST_DUP, scope_id, (__u64)args->fd, (__u64)-1, 0, 0);
    return 0;
}
#endif

#ifdef TP_syscalls__sys_exit_fcntl
TRACEPOINT_PROBE(syscalls, sys_exit_fcntl)
{
    dup_exit(args->ret);
    return 0;
}
#endif

#ifdef TP_syscalls__sys_enter_dup
TRACEPOINT_PROBE(syscalls, sys_enter_dup)
{
    __u64 scope_id = 0;
    if (in_scope(&scope_id))
        stash(ST_DUP, scope_id, (__u64)args->fildes, (__u64)-1, 0, 0);
    return 0;
}
#endif

#ifdef TP_syscalls__sys_exit_dup
TRACEPOINT_PROBE(syscalls, sys_exit_dup)
{
    dup_exit(args->ret);
    return 0;
}
#endif
