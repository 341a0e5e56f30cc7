/* io.bpf.c - bytes written to files and sent over sockets, counted in the kernel.
 *
 * Hooks:
 *   syscalls:sys_enter_sendto/sendmsg with MSG_FASTOPEN and an address: a TCP Fast Open connect,
 *       handled as a connect (kill policy, socket tracking, EVT_CONNECT with CONNECT_FASTOPEN)
 *   syscalls:sys_enter_sendto/sendmsg with any other inet/inet6 address: a datagram sent without
 *       connect() (UDP, ICMP); the first send of a process to a destination is an EVT_CONNECT
 *       with CONNECT_SENDTO, repeats are counted in conn_aggs (EVT_CONNECT_REPEAT) and the
 *       socket is tracked like a connected one, so its bytes are counted (EVT_NET_SEND); the
 *       kill policy's blocked destinations apply as to a connect
 *   syscalls:sys_enter_sendmmsg  the same for the destinations of its first MMSG_DESTS messages
 *       (DNS tunnels and UDP exfiltration batch datagrams with it); its bytes are not counted
 *   syscalls:sys_enter/exit_sendmsg, sys_enter/exit_sendmmsg (its first message)  fds passed
 *       over a unix socket (SCM_RIGHTS): their states wait in scm_msgs for the receiver's
 *       recvmsg (net.bpf.c); a failed send takes them back
 *   syscalls:sys_enter/exit_write, writev, sendto, sendmsg   add the returned byte count to
 *       file_aggs (fds opened with write intent, see file.bpf.c) or net_aggs (connected sockets,
 *       see net.bpf.c); nothing is sent per call
 *   syscalls:sys_enter/exit_pwrite64, pwritev, pwritev2, sendfile64, splice, copy_file_range
 *       the same, on the fd written to; dup'd fds carry the file's key (net.bpf.c), so
 *       `echo x > f` in sh (open, dup2 onto 1, write 1) is counted on f
 *   syscalls:sys_enter_mmap      a shared writable mapping of a file: EVT_MMAP_WRITE, and its
 *       length counted as one write (the bytes really changed are unknowable here)
 *   syscalls:sys_enter_close     forgets the fd; a socket's totals go out as EVT_NET_SEND
 *   (x86-64: the entries of write, writev, pwrite64 and close come from priv.bpf.c's raw
 *   sys_enter instead, their tracepoints detached: dispatch_entry)
 * Why: an open/write/close loop makes ~200k syscalls/s here and Python takes far fewer events;
 * aggregating per (process, file) and (process, socket) keeps totals exact with no drops.
 * User space reads the aggregation maps on process exit and on a timer (coi_sentinel/probes/
 * aggregates.py).
 * Blind spots: bytes changed through a mapping (its length is counted instead), io_uring
 * writes (io_uring's own events, uring.bpf.c), sendmmsg's bytes and destinations past its
 * first MMSG_DESTS messages, vmsplice; sockets and files inherited
 * from a parent are counted only on fds 0-2 (sockets) or not at all (files); the bytes of an
 * unconnected socket that sends to several destinations are all counted under the first.
 */
#include "scope.h"

/* The scope check comes first: a process outside every scope has no fd entries (they are made
 * in scope only), and a write of one costs the check alone, no fd-map look-ups. The entries of
 * write, writev, pwrite64 and close are also called by priv.bpf.c's raw sys_enter with the scope
 * already checked (dispatch_entry). */
static __always_inline void io_enter_scoped(__u64 scope_id, int fd)
{
    __u32 tgid = current_tgid();
    struct file_key *fk = file_get(tgid, fd);
    if (fk) {
        /* the file's key goes with the stash: the exit counts on it with no fd look-up */
        stash(ST_WRITE_FILE, scope_id, (__u64)fd, ((__u64)fk->kind << 32) | fk->tgid, fk->path_hash, 0);
        return;
    }
    if (sock_get(tgid, fd)) {
        stash(ST_WRITE_SOCK, scope_id, (__u64)fd, 0, 0, 0);
        return;
    }
    if (fd < 0 || fd > 2 || sock_entry(tgid, fd))   /* an entry here: a tombstone */
        return;
    /* stdio inherited from a parent that connected it (bash >& /dev/tcp/..., nc -e) */
    struct sock_info *si = sock_inherited(tgid, fd);
    if (!si)
        return;
    sock_put(tgid, fd, si);
    stash(ST_WRITE_SOCK, scope_id, (__u64)fd, 0, 0, 0);
}

static __always_inline void io_enter(int fd)
{
    __u64 scope_id = 0;
    if (in_scope(&scope_id))
        io_enter_scoped(scope_id, fd);
}

/* the exit's half for a stash already fetched (sendmsg's exit looks at its flags first) */
static __always_inline void io_exit_stash(struct inflight *s, long ret)
{
    if (!s || !s->nr)
        return;
    __u32 kind = s->nr;
    int fd = (int)s->a[0];
    __u64 scope_id = s->scope_id;
    struct file_key fk = {.tgid = (__u32)s->a[1], .kind = (__u32)(s->a[1] >> 32), .path_hash = s->a[2]};
    s->nr = 0;
    if (ret <= 0)
        return;
    if (kind == ST_WRITE_FILE) {
        struct file_agg *a = file_aggs.lookup(&fk);
        if (!a)
            return;
        __sync_fetch_and_add(&a->bytes, ret);
        __sync_fetch_and_add(&a->writes, 1);
        a->last_ts = bpf_ktime_get_ns();
        return;
    }
    __u64 now = bpf_ktime_get_ns();
    struct fd_key k = {.tgid = current_tgid(), .fd = fd};
    if (kind == ST_WRITE_SOCK) {
        struct net_agg *a = net_aggs.lookup(&k);
        if (!a) {
            struct sock_info *si = sock_get(k.tgid, fd);
            if (!si)
                return;
            struct net_agg fresh = {};
            fresh.first_ts = now;
            fresh.cgroup_id = bpf_get_current_cgroup_id();
            fresh.scope_id = scope_id;
            fresh.uid = (__u32)bpf_get_current_uid_gid();
            __builtin_memcpy(&fresh.sock, si, sizeof(fresh.sock));
            if (net_aggs.update(&k, &fresh)) {
                count_agg_full(1);
                return;
            }
            a = net_aggs.lookup(&k);
            if (!a)
                return;
        }
        __sync_fetch_and_add(&a->bytes, ret);
        __sync_fetch_and_add(&a->calls, 1);
        a->last_ts = now;
    }
}

static __always_inline void io_exit(long ret)
{
    io_exit_stash(inflight_get(0), ret);
}

#ifdef TP_syscalls__sys_enter_write
TRACEPOINT_PROBE(syscalls, sys_enter_write)
{
    io_enter((int)args->fd);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_exit_write
TRACEPOINT_PROBE(syscalls, sys_exit_write)
{
    io_exit(args->ret);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_enter_writev
TRACEPOINT_PROBE(syscalls, sys_enter_writev)
{
    io_enter((int)args->fd);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_exit_writev
TRACEPOINT_PROBE(syscalls, sys_exit_writev)
{
    io_exit(args->ret);
    return 0;
}
#endif
/* TCP Fast Open: sendto(MSG_FASTOPEN) with an address connects and sends in one call, no
 * connect() at all. Treated as a connect on entry (before the SYN leaves): the kill policy's
 * blocked destinations apply, the socket is tracked like a connected one, an EVT_CONNECT with
 * CONNECT_FASTOPEN is sent (ret 0: the connect's own result is not known here). */
#define MSG_FASTOPEN_V 0x20000000

/* EVT_CONNECT for a connect made by a send (ret 0: its result is not known on entry) */
static __always_inline void connect_record(__u64 scope_id, int fd, struct sock_info *si, __u32 flags)
{
    struct connect_event *e;
    if (!(e = reserve_hi(sizeof(*e), EVT_CONNECT, scope_id)))
        return;
    fill_hdr(&e->hdr, EVT_CONNECT, scope_id);
    e->ret = 0;
    e->fd = fd;
    __builtin_memcpy(&e->sock, si, sizeof(e->sock));
    e->unix_path[0] = 0;
    e->flags = flags;
    events_hi.ringbuf_submit(e, WAKE_NOW);
}

/* The inet/inet6 destination of a send into *si, and the kill policy applied to it: `flags`
 * plus CONNECT_KILLED when it was blocked; 0 when the address is no inet/inet6 one. */
static __always_inline __u32 send_dest(__u64 scope_id, __u64 uaddr, int len, struct sock_info *si,
                                       __u32 flags)
{
    if (read_sockaddr(si, 0, uaddr, len) < 0 || (si->family != AF_INET_V && si->family != AF_INET6_V))
        return 0;
    if ((kill_flags(scope_id) & KILL_BLOCKED_CONNECT) && connect_blocked(scope_id, uaddr, len)) {
        kill_current(KILL_REASON_BLOCKED_CONNECT);
        flags |= CONNECT_KILLED;
    }
    return flags;
}

static __always_inline void fastopen_connect(int fd, __u64 uaddr, int len)
{
    __u64 scope_id = 0;
    if (!in_scope(&scope_id))
        return;
    struct sock_info si = {};
    __u32 flags = send_dest(scope_id, uaddr, len, &si, CONNECT_FASTOPEN);
    if (!flags)
        return;
    sock_put(current_tgid(), fd, &si);
    connect_record(scope_id, fd, &si, flags);
}

/* ---- sends with a destination address (sendto/sendmsg on an unconnected socket) ----
 * A datagram socket sends without connect(): the destination comes with each send. The first
 * send of a process to one destination is reported as a connect (EVT_CONNECT, CONNECT_SENDTO,
 * ret 0: the send's own result is not known on entry), repeats only count in conn_aggs like
 * repeated connects; the fd is tracked like a connected socket (bytes counted, net_send at
 * close). Kept apart from the write accounting above: the send hooks only call it. */
static __always_inline void dgram_send_in(__u64 scope_id, int fd, __u64 uaddr, int len)
{
    struct sock_info si = {};
    __u32 flags = send_dest(scope_id, uaddr, len, &si, CONNECT_SENDTO);
    if (!flags)
        return;
    __u32 tgid = current_tgid();
    struct sock_info *known = sock_get(tgid, fd);
    if (!known)
        sock_put(tgid, fd, &si);
    struct conn_key k = {};
    k.tgid = tgid;
    k.family = si.family;
    k.port = si.port;
    __builtin_memcpy(k.addr, si.addr, sizeof(k.addr));
    __u64 now = bpf_ktime_get_ns();
    struct conn_agg *a = conn_aggs.lookup(&k);
    if (a && !(flags & CONNECT_KILLED)) {
        __sync_fetch_and_add(&a->count, 1);
        a->last_ts = now;
        return;
    }
    if (!a) {
        struct conn_agg fresh = {};
        fresh.first_ts = now;
        fresh.last_ts = now;
        fresh.scope_id = scope_id;
        fresh.cgroup_id = bpf_get_current_cgroup_id();
        fresh.count = 1;
        fresh.uid = (__u32)bpf_get_current_uid_gid();
        if (conn_aggs.update(&k, &fresh))
            count_agg_full(2);
    }
    connect_record(scope_id, fd, &si, flags);
}

static __always_inline void dgram_send(int fd, __u64 uaddr, int len)
{
    __u64 scope_id = 0;
    if (in_scope(&scope_id))
        dgram_send_in(scope_id, fd, uaddr, len);
}

/* ---- fds sent over a unix socket (SCM_RIGHTS, see scm_msgs in scope.h) ----
 * The states of the fds a message carries wait in scm_msgs from sendmsg's entry; a send that
 * fails takes them back at its exit (scm_pending). Only when the receiving hook is compiled
 * (net.bpf.c, recvmsg). */
#ifdef TP_syscalls__sys_exit_recvmsg
static __always_inline void scm_send(__u64 scope_id, int fd, __u64 control, __u64 controllen)
{
    __u32 zero = 0;
    struct scm_msg *m = scm_scratch.lookup(&zero);
    if (!m)
        return;
    __builtin_memset(m, 0, sizeof(*m));
    int n = scm_rights_read(control, controllen, m->fds);
    if (n == 0)
        return;
    __u32 tgid = current_tgid();
    scm_key_of(tgid, fd, scope_id, &m->key);
    m->sender = tgid;
    m->stamp = bpf_ktime_get_ns();
    if (n < 0) {
        m->flags = SCM_UNSURE;   /* fds unread: whatever waits for this socket is no longer sure */
    } else {
        m->nfds = n;
#pragma unroll
        for (int k = 0; k < SCM_FDS; k++)
            if (k < n)
                fd_state_read(tgid, m->fds[k], &m->st[k]);
    }
    if (scm_msgs.insert(&m->key, m)) {
        /* one waits already (or the map is full): which is received first is not known */
        struct scm_msg *old = scm_msgs.lookup(&m->key);
        if (old)
            old->flags |= SCM_UNSURE;
        return;
    }
    struct scm_pend p = {.key = m->key, .stamp = m->stamp};
    __u32 tid = (__u32)bpf_get_current_pid_tgid();
    scm_pending.update(&tid, &p);
    struct inflight *s = inflight_get(1);
    if (s)
        s->flags |= INFLIGHT_SCM_SEND;
}

/* sendmsg returned: a failed send's message, still waiting, goes */
static __always_inline void scm_send_exit(struct inflight *s, long ret)
{
    s->flags &= ~INFLIGHT_SCM_SEND;
    __u32 tid = (__u32)bpf_get_current_pid_tgid();
    struct scm_pend *p = scm_pending.lookup(&tid);
    if (!p)
        return;
    if (ret < 0) {
        struct scm_msg *m = scm_msgs.lookup(&p->key);
        if (m && m->stamp == p->stamp)
            scm_msgs.delete(&p->key);
    }
    scm_pending.delete(&tid);
}
#endif

/* sendmsg: the address is msghdr's msg_name, the fds it passes are in msg_control (read only
 * for a process in scope) */
static __always_inline void sendmsg_in_scope(int fd, __u64 msg)
{
    __u64 scope_id = 0;
    if (!in_scope(&scope_id))
        return;
    struct user_msghdr_head hdr = {};
    if (bpf_probe_read_user(&hdr, sizeof(hdr), (void *)msg))
        return;
    if (hdr.name)
        dgram_send_in(scope_id, fd, hdr.name, (int)hdr.namelen);
#ifdef TP_syscalls__sys_exit_recvmsg
    if (hdr.control && hdr.controllen >= sizeof(struct user_cmsghdr) + sizeof(__s32))
        scm_send(scope_id, fd, hdr.control, hdr.controllen);
#endif
}

#ifdef TP_syscalls__sys_enter_sendto
TRACEPOINT_PROBE(syscalls, sys_enter_sendto)
{
    __u64 uaddr = (__u64)args->addr;
    if (uaddr && (args->flags & MSG_FASTOPEN_V))
        fastopen_connect((int)args->fd, uaddr, (int)args->addr_len);
    else if (uaddr)
        dgram_send((int)args->fd, uaddr, (int)args->addr_len);
    io_enter(args->fd);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_exit_sendto
TRACEPOINT_PROBE(syscalls, sys_exit_sendto)
{
    io_exit(args->ret);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_enter_sendmsg
TRACEPOINT_PROBE(syscalls, sys_enter_sendmsg)
{
    if (args->flags & MSG_FASTOPEN_V) {
        struct { __u64 name; __u32 namelen; __u32 pad; } hdr = {};   /* struct msghdr's head */
        if (args->msg && !bpf_probe_read_user(&hdr, sizeof(hdr), (void *)args->msg) && hdr.name)
            fastopen_connect((int)args->fd, hdr.name, (int)hdr.namelen);
    } else if (args->msg) {
        sendmsg_in_scope((int)args->fd, (__u64)args->msg);
    }
    io_enter(args->fd);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_exit_sendmsg
TRACEPOINT_PROBE(syscalls, sys_exit_sendmsg)
{
    struct inflight *s = inflight_get(0);
#ifdef TP_syscalls__sys_exit_recvmsg
    if (s && (s->flags & INFLIGHT_SCM_SEND))
        scm_send_exit(s, args->ret);
#endif
    io_exit_stash(s, args->ret);
    return 0;
}
#endif

/* sendmmsg: the destinations of its first MMSG_DESTS messages (struct mmsghdr: a struct msghdr
 * and the length sent, 64 bytes on 64-bit machines), each one as sendmsg's. Its return value
 * counts messages, not bytes: nothing is added to the byte totals. */
#define MMSG_DESTS 4
#define MMSGHDR_SIZE 64
#ifdef TP_syscalls__sys_enter_sendmmsg
TRACEPOINT_PROBE(syscalls, sys_enter_sendmmsg)
{
    __u64 scope_id = 0;
    if (!in_scope(&scope_id) || !args->mmsg)
        return 0;
    __u64 base = (__u64)args->mmsg;
    __u32 vlen = args->vlen;
    for (int i = 0; i < MMSG_DESTS; i++) {
        if (i >= vlen)
            break;
        struct { __u64 name; __u32 namelen; __u32 pad; } hdr = {};   /* struct msghdr's head */
        if (!bpf_probe_read_user(&hdr, sizeof(hdr), (void *)(base + i * MMSGHDR_SIZE)) && hdr.name)
            dgram_send_in(scope_id, (int)args->fd, hdr.name, (int)hdr.namelen);
    }
#if defined(TP_syscalls__sys_exit_recvmsg) && defined(TP_syscalls__sys_exit_sendmmsg)
    /* the fds passed by its first message (SCM_RIGHTS), as sendmsg's */
    struct user_msghdr_head first = {};
    if (vlen && !bpf_probe_read_user(&first, sizeof(first), (void *)base) && first.control &&
        first.controllen >= sizeof(struct user_cmsghdr) + sizeof(__s32))
        scm_send(scope_id, (int)args->fd, first.control, first.controllen);
#endif
    return 0;
}
#endif

/* sendmmsg returns how many messages it sent: the first one's fds were sent when it is one
 * or more */
#ifdef TP_syscalls__sys_exit_sendmmsg
TRACEPOINT_PROBE(syscalls, sys_exit_sendmmsg)
{
#ifdef TP_syscalls__sys_exit_recvmsg
    struct inflight *s = inflight_get(0);
    if (s && (s->flags & INFLIGHT_SCM_SEND))
        scm_send_exit(s, args->ret >= 1 ? 0 : -1);
#endif
    return 0;
}
#endif

/* the positional and zero-copy write paths: the same accounting, on the fd written to */
#define IO_HOOKS(name, fdexpr)                                                              \
    TRACEPOINT_PROBE(syscalls, sys_enter_##name)                                            \
    {                                                                                       \
        io_enter((int)(fdexpr));                                                            \
        return 0;                                                                           \
    }                                                                                       \
    TRACEPOINT_PROBE(syscalls, sys_exit_##name)                                             \
    {                                                                                       \
        io_exit(args->ret);                                                                 \
        return 0;                                                                           \
    }

#if defined(TP_syscalls__sys_enter_pwrite64) && defined(TP_syscalls__sys_exit_pwrite64)
IO_HOOKS(pwrite64, args->fd)
#endif
#if defined(TP_syscalls__sys_enter_pwritev) && defined(TP_syscalls__sys_exit_pwritev)
IO_HOOKS(pwritev, args->fd)
#endif
#if defined(TP_syscalls__sys_enter_pwritev2) && defined(TP_syscalls__sys_exit_pwritev2)
IO_HOOKS(pwritev2, args->fd)
#endif
#if defined(TP_syscalls__sys_enter_sendfile64) && defined(TP_syscalls__sys_exit_sendfile64)
IO_HOOKS(sendfile64, args->out_fd)
#endif
#if defined(TP_syscalls__sys_enter_splice) && defined(TP_syscalls__sys_exit_splice)
IO_HOOKS(splice, args->fd_out)
#endif
#if defined(TP_syscalls__sys_enter_copy_file_range) && defined(TP_syscalls__sys_exit_copy_file_range)
IO_HOOKS(copy_file_range, args->fd_out)
#endif

/* A shared, writable mapping of a file changes it with no write call at all: reported once per
 * mmap (EVT_MMAP_WRITE, with the path when the fd was opened with write intent in scope), and
 * counted as one write of `len` bytes on the file's summary (the bytes actually changed are
 * not known; docs/events.md says so). */
#define PROT_WRITE_V 0x2
#define MAP_SHARED_V 0x1
#define MAP_SHARED_VALIDATE_V 0x3
#ifdef TP_syscalls__sys_enter_mmap
TRACEPOINT_PROBE(syscalls, sys_enter_mmap)
{
    int fd = (int)args->fd;
    if (fd < 0 || !(args->prot & PROT_WRITE_V) || (args->flags & 0x3) == 0 || (args->flags & 0x3) == 0x2)
        return 0;
    __u64 scope_id = 0;
    if (!in_scope(&scope_id))
        return 0;
    __u32 tgid = current_tgid();
    struct file_key *fk = file_get(tgid, fd);
    struct file_agg *a = fk ? file_aggs.lookup(fk) : 0;
    if (a) {
        __sync_fetch_and_add(&a->bytes, args->len);
        __sync_fetch_and_add(&a->writes, 1);
        a->last_ts = bpf_ktime_get_ns();
    }
    struct mmap_event *e;
    if (!(e = reserve_bulk(sizeof(*e), EVT_MMAP_WRITE, scope_id)))
        return 0;
    fill_hdr(&e->hdr, EVT_MMAP_WRITE, scope_id);
    e->fd = fd;
    e->prot = (__u32)args->prot;
    e->flags = (__u32)args->flags;
    e->pad = 0;
    e->len = args->len;
    e->path[0] = 0;
    if (a)
        bpf_probe_read_kernel_str(e->path, PATH_LEN, a->path);
    events_bulk.ringbuf_submit(e, bulk_submit_flags());
    return 0;
}
#endif

/* Only a process in scope has fd entries to forget (every entry is made in scope, and only a
 * process in scope reads them): one outside every scope pays the scope check alone. The fds a
 * process closes after its scope was removed keep their entries until the LRU evicts them or
 * the process exits (generation check); scopes are removed when their container stops. */
static __always_inline void close_enter(__u64 scope_id, int fd)
{
    struct fd_key k = {.tgid = current_tgid(), .fd = fd};
    if (k.fd >= 0 && k.fd <= 2) {
        __u32 *owner = fd_sharers.lookup(&k.tgid);   /* a shared table's stdio is closed too */
        if (owner)
            fd_forget(*owner, k.fd);
    }
    if (!fd_forget(k.tgid, k.fd))
        return;   /* no socket entry: no totals (net_aggs entries are made for those only) */
    struct net_agg *a = net_aggs.lookup(&k);
    if (!a)
        return;
    struct net_send_event *e;
    if ((e = reserve_hi(sizeof(*e), EVT_NET_SEND, a->scope_id))) {
        fill_hdr(&e->hdr, EVT_NET_SEND, a->scope_id);
        e->fd = k.fd;
        e->calls = a->calls;
        e->bytes = a->bytes;
        e->first_ts = a->first_ts;
        __builtin_memcpy(&e->sock, &a->sock, sizeof(e->sock));
        events_hi.ringbuf_submit(e, WAKE_LATER);
        net_aggs.delete(&k);
    }
    /* on a drop the entry stays for user space to flush on exit or timer: totals never vanish */
}

#ifdef TP_syscalls__sys_enter_close
TRACEPOINT_PROBE(syscalls, sys_enter_close)
{
    __u64 scope_id = 0;
    if (in_scope(&scope_id))
        close_enter(scope_id, (int)args->fd);
    return 0;
}
#endif
