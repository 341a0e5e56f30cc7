/* net.bpf.c - outbound connections and sockets moved onto stdio.
 *
 * Hooks:
 *   syscalls:sys_enter_connect / sys_exit_connect   AF_INET, AF_INET6, AF_UNIX destination and
 *       the return value (EINPROGRESS for non-blocking sockets, ENETUNREACH with no route); the
 *       sockaddr is read on exit, after the kernel copied it in. Connected sockets are kept in
 *       sock_fds for dup tracking and byte accounting (io.bpf.c). On x86-64 the entry comes
 *       from priv.bpf.c's raw sys_enter instead (dispatch_entry), its tracepoint detached.
 *   syscalls:sys_enter/exit_dup2, dup3, dup          the socket mark (and a pipe, fifo or pty end,
 *       pipe.bpf.c) follows every copy of the fd;
 *       an fd landing on 0, 1 or 2 is reported, flagged when it is
 *       a socket this process (or its parent, for fork-then-dup shells) connected
 *   Repeats of one inet/inet6 connect (same process, destination and result) are counted in
 *       conn_aggs and reported by user space as EVT_CONNECT_REPEAT: one record per destination.
 *   Kill policy: when the scope asks for it (kill_cfg), a connect to a destination in
 *       blocked_nets / blocked_ports gets SIGKILL from bpf_send_signal on syscall entry, before
 *       the process can use the socket; the record carries CONNECT_KILLED.
 *   syscalls:sys_enter/exit_accept, accept4, bind, listen   every socket: accepted inet/inet6
 *       connections get sock_fds entries like connected ones (a bind shell is caught as a
 *       reverse shell is); inet/inet6 binds and every listen are reported (EVT_BIND,
 *       EVT_LISTEN, EVT_ACCEPT, all sock_event)
 *   Kill policy KILL_SHELL_SOCKET: a shell or interpreter (shell_comms) that dups a network
 *       socket onto its own fd 0 or 1, or any process whose fds 0 and 1 are then both network
 *       sockets, gets SIGKILL on syscall exit (DUP_KILLED); exec.bpf.c kills one exec'd so.
 * Why: a reverse shell is a connect plus a dup onto stdio, whatever the binary is called.
 *   syscalls:sys_enter/exit_fcntl (F_DUPFD, F_DUPFD_CLOEXEC only)  the same, for perl & co
 *   Each copy takes its source's fd state, a directory's path (dir_fds) included: fts (chown
 *       -R, rm -r) works relative to F_DUPFD_CLOEXEC copies of its directory fds
 *   syscalls:sys_enter/exit_pidfd_open, pidfd_getfd   an fd copied from another process (a
 *       socket stolen with pidfd_getfd) is a dup whose source is that process's fd: EVT_PRIV
 *       op pidfd_getfd, and the dup's state and record when it lands on 0-2
 *   syscalls:sys_enter/exit_recvmsg   fds received over a unix socket (SCM_RIGHTS) get the
 *       state their sender's fds had (scm_msgs, written by io.bpf.c's sendmsg hooks), as a dup:
 *       EVT_PRIV op scm_rights, a received fd on 0-2 is an EVT_DUP, KILL_SHELL_SOCKET applies
 * Blind spots: fds received by recvmmsg, or past a message's first four; a message not matched
 * to its send (see scm_msgs in scope.h: no state then); unix-socket accepts; a pidfd made by
 * clone(CLONE_PIDFD) or received from another process (its process is unknown: arg0 0, no
 * copy). (sendto/sendmsg/sendmmsg on an unconnected socket has no connect: io.bpf.c reports
 * its first send to a destination as one.)
 */
#include "scope.h"

/* a connect's entry in scope (also called by priv.bpf.c's raw sys_enter, see dispatch_entry) */
static __always_inline void connect_enter(__u64 scope_id, int fd, __u64 uaddr, int addrlen)
{
    __u64 killed = 0;
    if ((kill_flags(scope_id) & KILL_BLOCKED_CONNECT) && connect_blocked(scope_id, uaddr, addrlen)) {
        kill_current(KILL_REASON_BLOCKED_CONNECT);
        killed = CONNECT_KILLED;
    }
    stash(ST_CONNECT, scope_id, (__u64)fd, uaddr, (__u64)addrlen, killed);
}

#ifdef TP_syscalls__sys_enter_connect
TRACEPOINT_PROBE(syscalls, sys_enter_connect)
{
    __u64 scope_id = 0;
    if (in_scope(&scope_id))
        connect_enter(scope_id, args->fd, (__u64)args->uservaddr, args->addrlen);
    return 0;
}
#endif

/* Repeats of one inet connect (same process, destination and result) are counted in
 * conn_aggs instead of sent: a retry or scan loop costs one record per destination. User space
 * reports the counts as EVT_CONNECT_REPEAT. Returns 1 when this connect was a repeat. */
static __always_inline int connect_repeat(struct inflight *s, long ret)
{
    __u64 uaddr = s->a[1];
    struct sock_info si = {};
    if (read_sockaddr(&si, 0, uaddr, (int)s->a[2]) < 0)
        return 0;
    if (si.family != AF_INET_V && si.family != AF_INET6_V)
        return 0;
    struct conn_key k = {};
    k.tgid = current_tgid();
    k.ret = ret;
    k.family = si.family;
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
    if (!(e = reserve_hi(sizeof(*e), EVT_CONNECT, s.scope_id)))
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

/* An fd of the current process, `newfd` (ret: the call's result), became a copy of an fd
 * whose state is *st: a dup (oldfd its source), a pidfd_getfd (oldfd the other process's fd),
 * an fd received over SCM_RIGHTS (oldfd the sender's fd). The state follows the copy; a copy
 * landing on 0, 1 or 2 is reported as EVT_DUP. */
static __always_inline void fd_land(__u64 scope_id, int oldfd, long ret, int newfd, struct fd_state *st)
{
    __u32 tgid = current_tgid();
    int sock = st->sock.family != 0;
    int file = st->file.kind != 0;
    int chan = st->chan.kind != 0;
    __u32 flags = sock ? DUP_OLDFD_SOCKET : 0;
    flags |= DUP_FD_KINDS;
    if (ret >= 0) {
        /* newfd was implicitly closed: whatever it was is gone */
        fd_forget(tgid, newfd);
        if (file)
            file_put(tgid, newfd, &st->file);   /* the copy writes to the same file (io.bpf.c) */
        if (chan)
            chan_put(tgid, newfd, &st->chan);   /* the same pipe, fifo or pty end (pipe.bpf.c) */
        if (sock)
            sock_put(tgid, newfd, &st->sock);
        else if (newfd >= 0 && newfd <= 2)
            sock_tombstone(tgid, newfd);
        /* a shell or interpreter putting a network socket on its own stdin/stdout
         * (bash -i >& /dev/tcp/..., python's os.dup2(s.fileno(), 0)): killed before it
         * returns to user space, so nothing it would print reaches the socket */
        if (sock && (newfd == 0 || newfd == 1) &&
            (st->sock.family == AF_INET_V || st->sock.family == AF_INET6_V) &&
            (kill_flags(scope_id) & KILL_SHELL_SOCKET) &&
            (comm_is_shell() || stdio_net(tgid, 1 - newfd))) {
            /* ... or any program that now has network sockets on both stdin and stdout: the
             * shape of a shell loop whatever the binary is called (a renamed bash) */
            kill_current(KILL_REASON_SHELL_SOCKET);
            flags |= DUP_KILLED;
        }
    }
    if (newfd < 0 || newfd > 2)
        return;
    struct dup_event *e;
    if (!(e = reserve_hi(sizeof(*e), EVT_DUP, scope_id)))
        return;
    fill_hdr(&e->hdr, EVT_DUP, scope_id);
    e->ret = ret;
    e->oldfd = oldfd;
    e->newfd = newfd;
    e->flags = flags;
    __builtin_memcpy(&e->sock, &st->sock, sizeof(e->sock));
    __builtin_memcpy(&e->chan, &st->chan, sizeof(e->chan));
    events_hi.ringbuf_submit(e, WAKE_NOW);
}

/* The fd state of `oldfd` of process `src` (the caller itself for dup, dup2, dup3 and fcntl;
 * another process for pidfd_getfd) follows the copy `newfd` of the current process. */
static __always_inline void fd_copy(__u64 scope_id, __u32 src, int oldfd, long ret, int newfd)
{
    struct fd_state st = {};
    fd_state_read(src, oldfd, &st);
    fd_land(scope_id, oldfd, ret, newfd, &st);
    if (ret < 0 || st.sock.family || st.file.kind || st.chan.kind)
        return;
    /* a directory's copy has its path too: fts (chown -R, rm -r) dups each directory fd with
     * F_DUPFD_CLOEXEC and works relative to the copy (file.bpf.c joins *at() paths to it) */
    struct fd_key dk = {.tgid = src, .fd = oldfd};
    struct dir_path *d = dir_fds.lookup(&dk);
    if (d) {
        dk.tgid = current_tgid();
        dk.fd = newfd;
        fd_mark(dk.tgid, newfd, FDM_DIR);
        dir_fds.update(&dk, d);
    }
}

static __always_inline void dup_exit(long ret)
{
    struct inflight s;
    if (unstash(ST_DUP, &s))
        fd_copy(s.scope_id, current_tgid(), (int)s.a[0], ret, ret >= 0 ? (int)ret : (int)s.a[1]);
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

/* ---- another process's fd: pidfd_open, then pidfd_getfd ----
 * pidfd_getfd copies an fd of another process into the caller: a socket stolen so, put on
 * stdio, is a reverse shell with no connect and no dup of a socket of its own. The pidfd's
 * process comes from pidfd_open (pidfds); the copy then gets the other process's fd state like
 * a dup (fd_copy: the socket, file or pipe end follows, a copy landing on 0-2 is an EVT_DUP with
 * the other process's fd as oldfd, and KILL_SHELL_SOCKET applies), and every call in scope is
 * an EVT_PRIV op pidfd_getfd. */
struct pidfd_val {
    __u32 pid;            /* what pidfd_open was given (a tgid, or a tid with PIDFD_THREAD) */
    __u32 pad;
    __u64 gen;            /* the caller's fd generation (entry_gen) */
    __u64 since;          /* when it was made: a child inherits it when it forked later */
};
BPF_TABLE("lru_hash", struct fd_key, struct pidfd_val, pidfds, 4096);

#if defined(TP_syscalls__sys_enter_pidfd_open) && defined(TP_syscalls__sys_exit_pidfd_open)
TRACEPOINT_PROBE(syscalls, sys_enter_pidfd_open)
{
    __u64 scope_id = 0;
    if (in_scope(&scope_id))
        stash(ST_PIDFD_OPEN, scope_id, (__u64)args->pid, 0, 0, 0);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_pidfd_open)
{
    struct inflight s;
    if (!unstash(ST_PIDFD_OPEN, &s) || args->ret < 0)
        return 0;
    struct fd_key k = {.tgid = current_tgid(), .fd = (int)args->ret};
    struct pidfd_val v = {.pid = (__u32)s.a[0], .gen = entry_gen(k.tgid, k.fd),
                          .since = bpf_ktime_get_ns()};
    pidfds.update(&k, &v);
    return 0;
}
#endif

/* the process of the caller's pidfd: its own pidfd_open's, else its parent's made before the
 * fork (a pidfd inherited); 0 when unknown */
static __always_inline __u32 pidfd_pid(__u32 tgid, int fd)
{
    struct fd_key k = {.tgid = tgid, .fd = fd};
    struct pidfd_val *v = pidfds.lookup(&k);
    if (v)
        return v->gen == entry_gen(tgid, fd) ? v->pid : 0;
    __u32 *pp = parents.lookup(&tgid);
    __u64 born = fd_gen(tgid);
    if (!pp || !born)
        return 0;
    k.tgid = *pp;
    v = pidfds.lookup(&k);
    if (!v || v->since >= born || v->gen != entry_gen(*pp, fd))
        return 0;
    return v->pid;
}

#if defined(TP_syscalls__sys_enter_pidfd_getfd) && defined(TP_syscalls__sys_exit_pidfd_getfd)
TRACEPOINT_PROBE(syscalls, sys_enter_pidfd_getfd)
{
    __u64 scope_id = 0;
    if (in_scope(&scope_id))
        stash(ST_PIDFD_GETFD, scope_id, (__u64)args->pidfd, (__u64)args->fd, (__u64)args->flags, 0);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_pidfd_getfd)
{
    struct inflight s;
    if (!unstash(ST_PIDFD_GETFD, &s))
        return 0;
    long ret = args->ret;
    __u32 tgid = current_tgid();
    __u32 pid = pidfd_pid(tgid, (int)s.a[0]);
    struct priv_event *e = priv_reserve(1, s.scope_id, ret, PRIV_PIDFD_GETFD, pid, s.a[1]);
    if (e)
        events_hi.ringbuf_submit(e, WAKE_NOW);
    if (ret >= 0 && pid)
        fd_copy(s.scope_id, pid, (int)s.a[1], ret, (int)ret);
    return 0;
}
#endif

/* ---- fds received over a unix socket: recvmsg with SCM_RIGHTS ----
 * The received fds get the states their sender's fds had (scm_msgs, written at sendmsg,
 * io.bpf.c) like copies made by a dup: a socket passed to a process that puts it on stdio is a
 * socket on stdio, kill policy included. Every receipt of fds in scope is an EVT_PRIV op
 * scm_rights (arg0 the sender's pid, 0 when its message was not matched; arg1 the fds
 * received). A message whose fds were dropped (no room: MSG_CTRUNC) takes its slot too. */
#define MSG_PEEK_V 2
#define MSG_CTRUNC_V 8
#define MSG_CMSG_CLOEXEC_V 0x40000000

/* MSG_CMSG_CLOEXEC: a received fd on 0-2 is closed by the next exec, so its entries get the
 * process's generation instead of stdio's 0 (see fd_marks); without one known, none stays */
static __always_inline void fd_land_cloexec(__u32 tgid, int fd)
{
    __u64 gen = fd_gen(tgid);
    if (!gen) {
        fd_forget(tgid, fd);
        return;
    }
    struct fd_key k = {.tgid = tgid, .fd = fd};
    struct sock_fd *v = sock_fds.lookup(&k);
    if (v && v->si.family)
        v->gen = gen;
    struct chan_fd *c = chan_fds.lookup(&k);
    if (c)
        c->gen = gen;
    struct file_fd *f = fd_files.lookup(&k);
    if (file_entry_open(f))
        f->gen = gen;
}

/* the received fd `fd`, the message's fd number i: its sender's state (m 0: none) */
static __always_inline void scm_land(struct inflight *s, __u32 tgid, struct scm_msg *m, int i, int fd)
{
    struct fd_state st = {};
    int oldfd = -1;
    if (m) {
        __builtin_memcpy(&st, &m->st[i], sizeof(st));
        oldfd = m->fds[i];
    }
    fd_land(s->scope_id, oldfd, fd, fd, &st);
    /* a new fd, perhaps on the number of one inherited and closed: the parent's entries for
     * that number (sock_inherited, chan_get) are not this fd's (fd_land does so for 0-2) */
    if (!st.sock.family && fd > 2)
        sock_tombstone(tgid, fd);
    if ((s->a[2] & MSG_CMSG_CLOEXEC_V) && fd >= 0 && fd <= 2)
        fd_land_cloexec(tgid, fd);
}

static __always_inline void scm_recv(struct inflight *s, long ret, int n, __s32 *fds)
{
    __u32 tgid = current_tgid();
    struct scm_key k = {};
    scm_key_of(tgid, (int)s->a[0], s->scope_id, &k);
    struct scm_msg *m = scm_msgs.lookup(&k);
    int sure = 0;
    __u32 sender = 0;
    if (m) {
        sure = !(m->flags & SCM_UNSURE) && n > 0 && m->nfds == (__u32)n &&
               (k.pair_id || bpf_ktime_get_ns() - m->stamp < SCM_SCOPE_WAIT_NS);
        sender = sure ? m->sender : 0;
    }
    if (n > 0) {
        struct priv_event *e = priv_reserve(1, s->scope_id, ret, PRIV_SCM_RIGHTS, sender, n);
        if (e)
            events_hi.ringbuf_submit(e, WAKE_NOW);
    }
    /* one call per fd with a constant index: a loop's variable offset into the map value is
     * more than the verifier follows */
    struct scm_msg *from = sure ? m : 0;
    if (n > 0)
        scm_land(s, tgid, from, 0, fds[0]);
    if (n > 1)
        scm_land(s, tgid, from, 1, fds[1]);
    if (n > 2)
        scm_land(s, tgid, from, 2, fds[2]);
    if (n > 3)
        scm_land(s, tgid, from, 3, fds[3]);
    if (m && !(s->a[2] & MSG_PEEK_V))
        scm_msgs.delete(&k);
}

#if defined(TP_syscalls__sys_enter_recvmsg) && defined(TP_syscalls__sys_exit_recvmsg)
TRACEPOINT_PROBE(syscalls, sys_enter_recvmsg)
{
    __u64 scope_id = 0;
    if (in_scope(&scope_id) && args->msg)
        stash(ST_RECVMSG, scope_id, (__u64)args->fd, (__u64)args->msg, (__u64)args->flags, 0);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_recvmsg)
{
    struct inflight s;
    if (!unstash(ST_RECVMSG, &s) || args->ret < 0)
        return 0;
    struct user_msghdr_head hdr = {};
    if (bpf_probe_read_user(&hdr, sizeof(hdr), (void *)s.a[1]))
        return 0;
    __s32 fds[SCM_FDS] = {-1, -1, -1, -1};
    int n = hdr.control ? scm_rights_read(hdr.control, hdr.controllen, fds) : 0;
    if (n == 0 && !(hdr.flags & MSG_CTRUNC_V))
        return 0;    /* no fds: most messages */
    scm_recv(&s, args->ret, n, fds);
    return 0;
}
#endif

/* ---- every socket: accept, bind, listen ---- */

static __always_inline void send_sock_event(__u32 type, __u64 scope_id, long ret, int fd,
                                            struct sock_info *si, __u32 backlog)
{
    struct sock_event *e;
    if (!(e = reserve_hi(sizeof(*e), type, scope_id)))
        return;
    fill_hdr(&e->hdr, type, scope_id);
    e->ret = ret;
    e->fd = fd;
    __builtin_memcpy(&e->sock, si, sizeof(e->sock));
    e->backlog = backlog;
    e->pad = 0;
    events_hi.ringbuf_submit(e, WAKE_NOW);
}

static __always_inline void accept_enter(int fd, __u64 uaddr)
{
    __u64 scope_id = 0;
    if (in_scope(&scope_id))
        stash(ST_ACCEPT, scope_id, (__u64)fd, uaddr, 0, 0);
}

/* An accepted inet/inet6 connection gets the same fd state as a connected one (sock_fds): a
 * bind shell with the accepted socket on stdio is a socket on stdio like a reverse shell. The
 * peer address is read from the caller's buffer; without one, the listener's bound address
 * stands in (SOCK_LOCAL_ADDR). Unix-socket accepts are not tracked. */
static __always_inline void accept_exit(long ret)
{
    struct inflight s;
    if (!unstash(ST_ACCEPT, &s))
        return;
    __u32 tgid = current_tgid();
    int lfd = (int)s.a[0];
    struct sock_info si = {};
    if (ret >= 0 && s.a[1] && read_sockaddr(&si, 0, s.a[1], 0) == 0) {
        si.flags = SOCK_ACCEPTED;
    } else {
        struct fd_key k = {.tgid = tgid, .fd = lfd};
        struct sock_info *b = bound_fds.lookup(&k);
        if (!b)
            return;
        __builtin_memcpy(&si, b, sizeof(si));
        si.flags = SOCK_ACCEPTED | SOCK_LOCAL_ADDR;
    }
    if (si.family != AF_INET_V && si.family != AF_INET6_V)
        return;
    if (ret >= 0)
        sock_put(tgid, (int)ret, &si);
    send_sock_event(EVT_ACCEPT, s.scope_id, ret, lfd, &si, 0);
}

#ifdef TP_syscalls__sys_enter_accept
TRACEPOINT_PROBE(syscalls, sys_enter_accept)
{
    accept_enter(args->fd, (__u64)args->upeer_sockaddr);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_exit_accept
TRACEPOINT_PROBE(syscalls, sys_exit_accept)
{
    accept_exit(args->ret);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_enter_accept4
TRACEPOINT_PROBE(syscalls, sys_enter_accept4)
{
    accept_enter(args->fd, (__u64)args->upeer_sockaddr);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_exit_accept4
TRACEPOINT_PROBE(syscalls, sys_exit_accept4)
{
    accept_exit(args->ret);
    return 0;
}
#endif

#ifdef TP_syscalls__sys_enter_bind
TRACEPOINT_PROBE(syscalls, sys_enter_bind)
{
    __u64 scope_id = 0;
    if (in_scope(&scope_id))
        stash(ST_BIND, scope_id, (__u64)args->fd, (__u64)args->umyaddr, (__u64)args->addrlen, 0);
    return 0;
}
#endif

/* inet/inet6 binds only (unix sockets are bound by every local server and client library) */
#ifdef TP_syscalls__sys_exit_bind
TRACEPOINT_PROBE(syscalls, sys_exit_bind)
{
    struct inflight s;
    if (!unstash(ST_BIND, &s))
        return 0;
    struct sock_info si = {};
    if (read_sockaddr(&si, 0, s.a[1], (int)s.a[2]) < 0)
        return 0;
    if (si.family != AF_INET_V && si.family != AF_INET6_V)
        return 0;
    si.flags = SOCK_LOCAL_ADDR;
    long ret = args->ret;
    if (ret == 0) {
        struct fd_key k = {.tgid = current_tgid(), .fd = (int)s.a[0]};
        fd_mark(k.tgid, k.fd, FDM_BOUND);
        bound_fds.update(&k, &si);
    }
    send_sock_event(EVT_BIND, s.scope_id, ret, (int)s.a[0], &si, 0);
    return 0;
}
#endif

#ifdef TP_syscalls__sys_enter_listen
TRACEPOINT_PROBE(syscalls, sys_enter_listen)
{
    __u64 scope_id = 0;
    if (in_scope(&scope_id))
        stash(ST_LISTEN, scope_id, (__u64)args->fd, (__u64)args->backlog, 0, 0);
    return 0;
}
#endif

/* every listen in scope: with the bound address when bind was seen, family 0 otherwise (a
 * socket listening on a port the kernel chose, or a unix socket) */
#ifdef TP_syscalls__sys_exit_listen
TRACEPOINT_PROBE(syscalls, sys_exit_listen)
{
    struct inflight s;
    if (!unstash(ST_LISTEN, &s))
        return 0;
    struct fd_key k = {.tgid = current_tgid(), .fd = (int)s.a[0]};
    struct sock_info si = {};
    struct sock_info *b = bound_fds.lookup(&k);
    if (b)
        __builtin_memcpy(&si, b, sizeof(si));
    send_sock_event(EVT_LISTEN, s.scope_id, args->ret, k.fd, &si, (__u32)s.a[1]);
    return 0;
}
#endif
