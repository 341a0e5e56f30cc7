/* scope.h - maps and helpers shared by every probe family: the cgroup filter, the two ring
 * buffers, the drop counters, the fork map (ppid without reading task_struct) and the common
 * event header.
 *
 * Never dereference a kernel struct here: the headers bcc compiles against may not match the
 * running kernel. Everything comes from helpers, tracepoint arguments and our own maps.
 *
 * Knobs come in as -D cflags from coi_sentinel/probes/loader.py:
 *   HI_PAGES, BULK_PAGES   ring buffer sizes (pages, power of two)
 *   BULK_WAKEUP_EVERY      wake the reader on every Nth bulk record (power of two)
 *   MAX_PROCS, MAX_AGGS    map sizes
 */
#ifndef COI_SCOPE_H
#define COI_SCOPE_H

#include <uapi/linux/ptrace.h>
#include <uapi/linux/bpf.h>
#include "events.h"

/* a type named in the pwritev2 tracepoint's format that the bcc headers do not define */
typedef int rwf_t;

#ifndef HI_PAGES
#define HI_PAGES 1024
#endif
#ifndef BULK_PAGES
#define BULK_PAGES 1024
#endif
#ifndef BULK_WAKEUP_EVERY
#define BULK_WAKEUP_EVERY 64
#endif
#ifndef MAX_PROCS
#define MAX_PROCS 65536
#endif
#ifndef MAX_AGGS
#define MAX_AGGS 16384
#endif
#define MAX_LEVELS 8

/* Security-critical records (exec, fork, exit, connect, dup, sensitive opens, setuid chmods,
 * priv) never queue behind bulk file records (write-opens, rename, unlink, chmod): they have a
 * ring of their own. */
BPF_RINGBUF_OUTPUT(events_hi, HI_PAGES);
BPF_RINGBUF_OUTPUT(events_bulk, BULK_PAGES);

/* Lost records: reserve failures per CPU and event type, and per scope (a session answers the
 * losses of its own scope, not those of another session on the same host). */
BPF_PERCPU_ARRAY(drops, __u64, EVT_MAX);
BPF_HASH(scope_drops, __u64, __u64, 4096);
/* Refusals that did not lose the record (enum ring_retry). */
BPF_PERCPU_ARRAY(ring_retries, __u64, RETRY_KINDS);
/* Aggregation maps that were full (the record was sent unaggregated or counted here). */
BPF_PERCPU_ARRAY(agg_full, __u64, 4);
BPF_PERCPU_ARRAY(bulk_seq, __u64, 1);

BPF_ARRAY(config, struct scope_cfg, 1);
BPF_HASH(scopes, __u64, __u8, 4096);
/* tgid -> parent tgid, filled at fork for processes in scope */
BPF_HASH(parents, __u32, __u32, MAX_PROCS);

static __always_inline void count_drop(__u32 type, __u64 scope_id)
{
    __u64 *n = drops.lookup(&type);
    if (n)
        __sync_fetch_and_add(n, 1);
    __u64 zero = 0;
    scope_drops.insert(&scope_id, &zero);      /* no-op when the scope has lost before */
    n = scope_drops.lookup(&scope_id);
    if (n)
        __sync_fetch_and_add(n, 1);
}

static __always_inline void count_retry(__u32 ring)
{
    __u64 *n = ring_retries.lookup(&ring);
    if (n)
        __sync_fetch_and_add(n, 1);
}

static __always_inline void count_agg_full(__u32 which)
{
    __u64 *n = agg_full.lookup(&which);
    if (n)
        __sync_fetch_and_add(n, 1);
}

/* Returns 1 when the current task is traced; *scope_id receives its container-level cgroup.
 * Out-of-scope tasks cost the config lookup (inlined: no call), one ancestor id and one hash
 * lookup per level in use (normally one). A helper call costs ~20-50 ns here (the CPU's
 * return-thunk mitigation), so the watcher's own pid is read only for a task found in scope. */
static __always_inline int in_scope(__u64 *scope_id)
{
    __u32 zero = 0;
    struct scope_cfg *cfg = config.lookup(&zero);
    if (!cfg || cfg->mode == SCOPE_NONE)
        return 0;
    if (cfg->mode == SCOPE_ALL) {
        if ((__u32)(bpf_get_current_pid_tgid() >> 32) == cfg->self_tgid)
            return 0;
        *scope_id = cfg->host_level ? bpf_get_current_ancestor_cgroup_id(cfg->host_level) : 0;
        return 1;
    }
    __u32 levels = cfg->levels;
#pragma unroll
    for (int level = 1; level < MAX_LEVELS; level++) {
        if (!(levels & (1u << level)))
            continue;
        __u64 id = bpf_get_current_ancestor_cgroup_id(level);
        if (id && scopes.lookup(&id)) {
            if ((__u32)(bpf_get_current_pid_tgid() >> 32) == cfg->self_tgid)
                return 0;
            *scope_id = id;
            return 1;
        }
    }
    return 0;
}

static __always_inline void fill_hdr(struct event_hdr *h, __u32 type, __u64 scope_id)
{
    __u64 id = bpf_get_current_pid_tgid();
    __u64 ug = bpf_get_current_uid_gid();
    __u32 tgid = id >> 32;
    h->ts_ns = bpf_ktime_get_ns();
    h->cgroup_id = bpf_get_current_cgroup_id();
    h->scope_id = scope_id;
    h->type = type;
    h->pid = tgid;
    h->tid = (__u32)id;
    __u32 *pp = parents.lookup(&tgid);
    h->ppid = pp ? *pp : 0;
    h->uid = (__u32)ug;
    h->gid = ug >> 32;
    bpf_get_current_comm(h->comm, sizeof(h->comm));
}

/* Wake-up policy. A wake-up costs 1-4 us inside the traced syscall and, worse, puts the reader
 * on a CPU next to the workload: waking it on every exec made an exec loop 1.18x slower, not
 * waking it 1.01x. So only records a response may depend on at once (exec, connect, dup,
 * sensitive open, chmod, priv) wake it, and at most once per WAKE_INTERVAL_NS: the first urgent
 * record after a quiet spell wakes the reader at once, records in a burst ride along with the
 * next wake-up or the reader's poll timer (5 ms). They force the wake-up: the kernel's adaptive
 * mode would not wake the reader while older unread records sit before them. Fork, exit and
 * the other high-priority records never wake it. The bulk ring wakes the reader on every
 * BULK_WAKEUP_EVERY-th record only. */
#ifndef WAKE_INTERVAL_NS
#define WAKE_INTERVAL_NS 2000000ULL
#endif
#define WAKE_LATER BPF_RB_NO_WAKEUP
BPF_ARRAY(last_wake, __u64, 1);

static __always_inline __u64 wake_now(void)
{
    __u32 zero = 0;
    __u64 *last = last_wake.lookup(&zero);
    __u64 now = bpf_ktime_get_ns();
    if (!last)
        return BPF_RB_FORCE_WAKEUP;
    if (now - *last < WAKE_INTERVAL_NS)
        return BPF_RB_NO_WAKEUP;
    *last = now;
    return BPF_RB_FORCE_WAKEUP;
}
#define WAKE_NOW wake_now()

static __always_inline __u64 bulk_submit_flags(void)
{
    __u32 zero = 0;
    __u64 *seq = bulk_seq.lookup(&zero);
    if (!seq)
        return 0;
    __u64 n = ++(*seq);
    return (n & (BULK_WAKEUP_EVERY - 1)) ? BPF_RB_NO_WAKEUP : 0;
}

/* Reserve a record on a ring; a failure is retried once, then counted as a drop of that event
 * type in that scope. Since 6.15 a ring's lock may give up rather than spin (rqspinlock: a
 * deadlock check or a 250 ms timeout, e.g. a vCPU the host stopped while holding it), so a
 * refusal can come with room left. A security record refused twice goes to the bulk ring (its
 * own lock and room; the reader decodes a record by its type, whichever ring brought it and
 * orders a batch by time) and is lost only when both rings refuse it: clean-clone CI runs lost
 * single exec records at a session's start with the 4 MiB ring almost empty and three retries.
 * (bcc map functions cannot be used inside macros, hence inline functions written out.) */
static __always_inline void *reserve_hi(__u32 size, __u32 type, __u64 scope_id)
{
    void *p = events_hi.ringbuf_reserve(size);
    if (p)
        return p;
    p = events_hi.ringbuf_reserve(size);
    if (p) {
        count_retry(RETRY_HI);
        return p;
    }
    p = events_bulk.ringbuf_reserve(size);
    if (p)
        count_retry(RETRY_HI_VIA_BULK);
    else
        count_drop(type, scope_id);
    return p;
}

static __always_inline void *reserve_bulk(__u32 size, __u32 type, __u64 scope_id)
{
    void *p = events_bulk.ringbuf_reserve(size);
    if (p)
        return p;
    p = events_bulk.ringbuf_reserve(size);
    if (p)
        count_retry(RETRY_BULK);
    else
        count_drop(type, scope_id);
    return p;
}

/* An EVT_PRIV record reserved on the high-priority (`hi`) or the bulk ring, its header and
 * numbers filled and str empty: the caller writes str and submits it. 0: both rings refused. */
static __always_inline struct priv_event *priv_reserve(int hi, __u64 scope_id, long ret, __u32 op,
                                                       __u64 arg0, __u64 arg1)
{
    struct priv_event *e = hi ? reserve_hi(sizeof(*e), EVT_PRIV, scope_id)
                              : reserve_bulk(sizeof(*e), EVT_PRIV, scope_id);
    if (!e)
        return 0;
    fill_hdr(&e->hdr, EVT_PRIV, scope_id);
    e->ret = ret;
    e->op = op;
    e->arg0 = arg0;
    e->arg1 = arg1;
    e->str[0] = 0;
    return e;
}

/* Read a user-space path into a fixed buffer; returns the length read including the NUL. */
static __always_inline int read_user_path(char *dst, const void *src)
{
    if (!src)
        return 0;
    return bpf_probe_read_user_str(dst, PATH_LEN, src);
}


/* ---- syscall enter -> exit stash, one per thread (a thread is in one syscall at a time) ---- */
struct inflight {
    __u64 a[4];
    __u64 scope_id;
    __u32 nr;             /* which hook stashed it (enum stash_kind) */
    __u32 flags;          /* INFLIGHT_*: kept apart from nr, stash and unstash leave them */
};
/* sendmsg's enter left a send of fds (SCM_RIGHTS) in scm_pending for its exit */
#define INFLIGHT_SCM_SEND 1
enum stash_kind {
    ST_EXEC = 1, ST_OPEN, ST_CONNECT, ST_DUP, ST_WRITE_FILE, ST_WRITE_SOCK, ST_RENAME,
    ST_UNLINK, ST_CHMOD, ST_PRIV, ST_ACCEPT, ST_BIND, ST_LISTEN, ST_LINK, ST_CHDIR,
    ST_PIPE, ST_PTY_IOCTL, ST_MKFIFO, ST_SOCKPAIR, ST_UTIME, ST_PIDFD_OPEN, ST_PIDFD_GETFD,
    ST_RECVMSG, ST_TRUNCATE, ST_CHOWN,
};
#ifndef NO_TASK_BTF
/* Task-local storage: no hashing or locking on the syscall path, and a task that never
 * stashed costs one pointer test on syscall exit. */
BPF_TASK_STORAGE(inflight_store, struct inflight);

static __always_inline struct inflight *inflight_get(int create)
{
    struct task_struct *t = (struct task_struct *)bpf_get_current_task_btf();
    return inflight_store.task_storage_get(t, 0, create ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);
}
#else
BPF_HASH(inflight_map, __u32, struct inflight, MAX_PROCS);

static __always_inline struct inflight *inflight_get(int create)
{
    __u32 tid = (__u32)bpf_get_current_pid_tgid();
    struct inflight *s = inflight_map.lookup(&tid);
    if (s || !create)
        return s;
    struct inflight zero = {};
    inflight_map.update(&tid, &zero);
    return inflight_map.lookup(&tid);
}
#endif

static __always_inline void stash(__u32 kind, __u64 scope_id, __u64 a0, __u64 a1, __u64 a2, __u64 a3)
{
    struct inflight *s = inflight_get(1);
    if (!s)
        return;
    s->a[0] = a0;
    s->a[1] = a1;
    s->a[2] = a2;
    s->a[3] = a3;
    s->scope_id = scope_id;
    s->nr = kind;
}

/* Takes the stash of the current thread if it was made by `kind`; returns 0 when there is none.
 * Either way the stash is cleared: it belongs to one syscall only. */
static __always_inline int unstash(__u32 kind, struct inflight *out)
{
    struct inflight *s = inflight_get(0);
    if (!s || !s->nr)
        return 0;
    if (s->nr != kind) {
        s->nr = 0;
        return 0;
    }
    __builtin_memcpy(out, s, sizeof(*out));
    s->nr = 0;
    return 1;
}

/* ---- per-(process, fd) state shared by the families ----
 * An fd's entry must not outlive the fd, or a later fd with the same number (a log file, a
 * pipe) would pass for a socket. close() and dup2/dup3 onto the fd remove it; fds that exec
 * closes (O_CLOEXEC) and fds of a process that exited and whose pid came back are invisible,
 * so every entry carries the generation of its process (a new one at fork and at exec) and an
 * entry of an older generation is stale. Stdio (fds 0-2) survives exec by convention: its
 * entries have generation 0 and are removed when the process exits. */
struct sock_fd {
    struct sock_info si;
    __u64 gen;
    __u64 since;          /* when it was recorded: a child only inherits entries older than it */
};
struct file_fd {
    struct file_key key;
    __u64 gen;
};
BPF_TABLE("lru_hash", struct fd_key, struct sock_fd, sock_fds, MAX_AGGS);   /* connected sockets */
BPF_TABLE("lru_hash", struct fd_key, struct file_fd, fd_files, MAX_AGGS);   /* fds of file_aggs */
BPF_HASH(fd_gens, __u32, __u64, MAX_PROCS);
/* Processes that share one fd table without being threads of one process: clone(CLONE_FILES)
 * without CLONE_THREAD (proc.bpf.c). child tgid -> the tgid that stands for the table (the
 * first process that had it). A socket one of them puts on fd 0-2 is on the stdio of all: its
 * entry is written for the owner too (sock_put), and a sharer's stdio is looked up in the
 * owner's entries (stdio_net), so the one that connects and the one that execs a shell may be
 * different processes. Ordinary forks, vfork and posix_spawn do not share the table. */
BPF_TABLE("lru_hash", __u32, __u32, fd_sharers, 4096);
/* A network socket some process of a scope installed on another's fd 0, 1 or 2 with
 * SECCOMP_IOCTL_NOTIF_ADDFD (pipe.bpf.c): which process is known only to the kernel (the
 * notification's id), so for ADDFD_WINDOW_NS every exec in the scope takes those fds for
 * sockets unless it knows better (exec.bpf.c). No dup, SCM_RIGHTS or pidfd_getfd is involved. */
struct addfd_note {
    __u64 ts;
    __u32 fds;            /* bit n: fd n may now be the socket */
    __u32 pad;
};
BPF_TABLE("lru_hash", __u64, struct addfd_note, addfd_pending, 4096);
#define ADDFD_WINDOW_NS 2000000000ULL

/* bits (1: fd 0, 2: fd 1) of stdio fds a recent ADDFD in this scope may have made sockets */
static __always_inline __u32 addfd_stdio(__u64 scope_id)
{
    struct addfd_note *n = addfd_pending.lookup(&scope_id);
    if (!n || bpf_ktime_get_ns() - n->ts > ADDFD_WINDOW_NS)
        return 0;
    return n->fds;
}

/* owner tgid -> sharers alive (FD_OWNER_GONE set once the owner exited): an owner's stdio
 * entries outlive it while a sharer runs on the table (proc.bpf.c) */
BPF_TABLE("lru_hash", __u32, __u32, fd_table_refs, 4096);
#define FD_OWNER_GONE 0x80000000u
/* Which per-fd maps hold an entry for each of a process's fds below FD_MARK_FDS: one bit per
 * fd and map (FDM_*). close() would otherwise delete the fd from all six maps (an LRU delete
 * takes a bucket lock: ~60 ns each, most closes in scope cost ~400 ns of them) where the fd is
 * in one map or none. Every entry made for a low fd sets its bit first (fd_mark); fd_forget
 * deletes only where a bit is set. A process without marks (made at its fork or exec in scope,
 * or by its first entry) gets every delete, as does an fd at or above FD_MARK_FDS. Bits are
 * only ever cleared by fd_forget, so a bit may outlive its entry (LRU eviction, a stale
 * generation), never the other way round.
 * fd_files is the exception: its entry of a marked fd is not deleted at close but kept, as
 * closed (gen FD_GEN_CLOSED), and its bit stays set; file_put reopens it in place when the same
 * file lands on the same fd again (an open/write/close loop paid an LRU update and an LRU
 * delete per iteration: 300-650 ns of its programs' time, bench_hooks.py). So an fd_files
 * entry may outlive its fd, as closed, and every reader takes a closed entry for none
 * (file_get, file_entry_open); it still never outlives its bit, since FDM_FILE bits are not
 * cleared while the process lives. A closed entry stands for no fd whatever the generation
 * (pid reuse, exec), LRU eviction only makes it absent, and the process's exit deletes every
 * entry its FDM_FILE bits name. */
#define FD_MARK_FDS 64
enum fd_mark_kind { FDM_FILE, FDM_SOCK, FDM_MEMFD, FDM_BOUND, FDM_DIR, FDM_CHAN, FDM_KINDS };
struct fd_marks {
    __u64 bits[FDM_KINDS];
};
BPF_HASH(fd_marks, __u32, struct fd_marks, MAX_PROCS);
/* fds of files without a name: 1 memfd_create, 2 open(O_TMPFILE) */
BPF_TABLE("lru_hash", struct fd_key, __u32, memfds, 4096);
#define ANON_MEMFD 1
#define ANON_TMPFILE 2
/* path hashes (file_key.path_hash) of paths unlinked in scope: an fd opened on one of them and
 * executed later runs a file that no longer has that name */
BPF_TABLE("lru_hash", __u64, __u8, unlinked_paths, 4096);
/* inet/inet6 sockets bound in scope: local address, for listen and address-less accept */
BPF_TABLE("lru_hash", struct fd_key, struct sock_info, bound_fds, 4096);
/* directories open in scope (O_DIRECTORY or O_PATH opens): their path, so *at() paths and
 * fchdir resolve against it (file.bpf.c) */
struct dir_path {
    __u32 len;            /* characters, without the NUL */
    __u32 pad;
    char path[PATH_LEN];
};
BPF_TABLE("lru_hash", struct fd_key, struct dir_path, dir_fds, 4096);
/* pipe, fifo and pty ends (see chan_info in events.h), with the generations of sock_fds */
struct chan_fd {
    struct chan_info ci;
    __u64 gen;
    __u64 since;
};
BPF_TABLE("lru_hash", struct fd_key, struct chan_fd, chan_fds, MAX_AGGS);
/* path hashes of fifos made in scope (mknod S_IFIFO), and how many were ever made: opens look
 * the path up only when there is one */
BPF_TABLE("lru_hash", __u64, __u8, fifo_paths, 4096);
BPF_ARRAY(fifo_count, __u64, 1);
/* pty number -> its master's id, per scope (each container has its own devpts numbering) */
struct pty_key {
    __u64 scope_id;
    __u32 num;
    __u32 pad;
};
BPF_TABLE("lru_hash", struct pty_key, __u64, pty_ids, 4096);
/* task names (comm) of shells and interpreters, filled by user space: the kill policy
 * KILL_SHELL_SOCKET applies to these */
BPF_HASH(shell_comms, struct comm_key, __u8, 1024);
BPF_HASH(file_aggs, struct file_key, struct file_agg, MAX_AGGS);
BPF_HASH(net_aggs, struct fd_key, struct net_agg, MAX_AGGS);
BPF_HASH(conn_aggs, struct conn_key, struct conn_agg, MAX_AGGS);

/* ---- in-kernel kill policy ---- */
BPF_HASH(kill_cfg, __u64, __u32, 4096);                       /* scope id -> KILL_* flags */
BPF_LPM_TRIE(blocked_nets, struct blocked_key, __u8, 4096);
BPF_HASH(blocked_ports, struct blocked_port_key, __u8, 4096);
BPF_PERCPU_ARRAY(kills, __u64, KILL_REASON_MAX);             /* SIGKILLs sent, per reason */

static __always_inline __u32 kill_flags(__u64 scope_id)
{
    __u32 *f = kill_cfg.lookup(&scope_id);
    return f ? *f : 0;
}

/* SIGKILL the current process. The decision never depends on ring-buffer space: the kill is
 * counted here and the record that reports it is best effort. */
static __always_inline void kill_current(__u32 reason)
{
    bpf_send_signal(9);
    __u64 *n = kills.lookup(&reason);
    if (n)
        __sync_fetch_and_add(n, 1);
}

static __always_inline __u32 current_tgid(void)
{
    return bpf_get_current_pid_tgid() >> 32;
}

static __always_inline __u64 fd_gen(__u32 tgid)
{
    __u64 *g = fd_gens.lookup(&tgid);
    return g ? *g : 0;
}

static __always_inline void new_fd_gen(__u32 tgid)
{
    __u64 now = bpf_ktime_get_ns();
    fd_gens.update(&tgid, &now);
    struct fd_marks none = {};
    fd_marks.insert(&tgid, &none);   /* an existing one keeps its bits (stdio survives exec) */
}

/* Before an entry for (tgid, fd) is made in the map of `kind`: its bit (see fd_marks) */
static __always_inline void fd_mark(__u32 tgid, int fd, __u32 kind)
{
    if (fd < 0 || fd >= FD_MARK_FDS || kind >= FDM_KINDS)
        return;
    struct fd_marks *m = fd_marks.lookup(&tgid);
    if (!m) {
        struct fd_marks none = {};
        fd_marks.insert(&tgid, &none);
        m = fd_marks.lookup(&tgid);
        if (!m)
            return;   /* no marks for the process: fd_forget deletes everywhere */
    }
    __u64 bit = 1ULL << fd;
    if (!(m->bits[kind] & bit))   /* FDM_FILE bits stay set: mostly no atomic needed */
        __sync_fetch_and_or(&m->bits[kind], bit);
}

static __always_inline __u64 entry_gen(__u32 tgid, int fd)
{
    return (fd >= 0 && fd <= 2) ? 0 : fd_gen(tgid);
}

/* The process's own entry for fd, tombstones (family 0: "known not a socket", written when
 * something else lands on fds 0-2) included; 0 when there is none. */
static __always_inline struct sock_info *sock_entry(__u32 tgid, int fd)
{
    struct fd_key k = {.tgid = tgid, .fd = fd};
    struct sock_fd *v = sock_fds.lookup(&k);
    if (!v)
        return 0;
    if (v->gen && v->gen != fd_gen(tgid)) {
        sock_fds.delete(&k);
        return 0;
    }
    return &v->si;
}

static __always_inline struct sock_info *sock_get(__u32 tgid, int fd)
{
    struct sock_info *si = sock_entry(tgid, fd);
    return (si && si->family) ? si : 0;
}

static __always_inline void sock_put(__u32 tgid, int fd, struct sock_info *si)
{
    struct fd_key k = {.tgid = tgid, .fd = fd};
    struct sock_fd v = {};
    __builtin_memcpy(&v.si, si, sizeof(v.si));
    v.gen = entry_gen(tgid, fd);
    v.since = bpf_ktime_get_ns();
    fd_mark(tgid, fd, FDM_SOCK);
    sock_fds.update(&k, &v);
    __u32 *owner = (fd >= 0 && fd <= 2) ? fd_sharers.lookup(&tgid) : 0;
    if (owner) {
        /* the fd table is shared (fd_sharers): the owner's stdio changed too */
        k.tgid = *owner;
        v.gen = entry_gen(k.tgid, fd);
        fd_mark(k.tgid, fd, FDM_SOCK);
        sock_fds.update(&k, &v);
    }
}

/* A socket the current process inherited on `fd` from its parent: the parent's entry, if it
 * was recorded before this process forked (or last exec'd). Threads of the parent run on after
 * a fork and may put a new socket on the same fd number meanwhile (Go's vfork does exactly
 * this), which the child's fd table does not have. */
static __always_inline struct sock_info *sock_inherited(__u32 tgid, int fd)
{
    __u32 *pp = parents.lookup(&tgid);
    if (!pp)
        return 0;
    __u64 born = fd_gen(tgid);
    struct fd_key k = {.tgid = *pp, .fd = fd};
    struct sock_fd *v = sock_fds.lookup(&k);
    if (!v || !born || v->since >= born || !v->si.family)
        return 0;
    if (v->gen && v->gen != fd_gen(*pp))
        return 0;
    return &v->si;
}

/* An fd_files entry of an fd that was closed (fd_forget): no fd's, whatever the process's
 * generation. fd_gen() values are clock readings and never this. */
#define FD_GEN_CLOSED (~0ULL)

/* 1 when an fd_files entry stands for an open fd (possibly of an older generation) */
static __always_inline int file_entry_open(struct file_fd *v)
{
    return v && v->gen != FD_GEN_CLOSED;
}

static __always_inline struct file_key *file_get(__u32 tgid, int fd)
{
    struct fd_key k = {.tgid = tgid, .fd = fd};
    struct file_fd *v = fd_files.lookup(&k);
    if (!file_entry_open(v))
        return 0;
    if (v->gen && v->gen != fd_gen(tgid)) {
        fd_files.delete(&k);
        return 0;
    }
    return &v->key;
}

static __always_inline void file_put(__u32 tgid, int fd, struct file_key *key)
{
    struct fd_key k = {.tgid = tgid, .fd = fd};
    __u64 gen = entry_gen(tgid, fd);
    fd_mark(tgid, fd, FDM_FILE);
    struct file_fd *old = fd_files.lookup(&k);
    if (old && old->key.tgid == key->tgid && old->key.kind == key->kind &&
        old->key.path_hash == key->path_hash) {
        old->gen = gen;   /* the same file on the same fd again (closed or not): no update */
        return;
    }
    struct file_fd v = {};
    __builtin_memcpy(&v.key, key, sizeof(v.key));
    v.gen = gen;
    fd_files.update(&k, &v);
}

/* fd_forget of a marked fd_files entry: kept, as closed (see fd_marks) */
static __always_inline void file_close(struct fd_key *k)
{
    struct file_fd *v = fd_files.lookup(k);
    if (v)
        v->gen = FD_GEN_CLOSED;
}

/* ---- sockaddr reading and the blocked-destination check (net.bpf.c, io.bpf.c) ---- */
#define AF_UNIX_V 1
#define AF_INET_V 2
#define AF_INET6_V 10
#define EINPROGRESS_V 115

static __always_inline int read_sockaddr(struct sock_info *si, char *unix_path, __u64 uaddr, int len)
{
    /* an inet or inet6 address of the length the caller gave: read in one call (a helper call
     * costs ~20-50 ns here), else field by field */
    __u8 raw[24] = {};
    int got = 0;
    if (!uaddr)
        return -1;
    if (len >= 24)
        got = bpf_probe_read_user(raw, 24, (void *)uaddr) ? 0 : 24;
    else if (len >= 16)
        got = bpf_probe_read_user(raw, 16, (void *)uaddr) ? 0 : 16;
    if (got) {
        __u16 fam = *(__u16 *)raw;
        if (fam == AF_INET_V || (fam == AF_INET6_V && got == 24)) {
            si->family = fam;
            si->flags = 0;
            si->port = __builtin_bswap16(*(__u16 *)(raw + 2));
            if (fam == AF_INET_V)
                __builtin_memcpy(si->addr, raw + 4, 4);
            else
                __builtin_memcpy(si->addr, raw + 8, 16);
            return 0;
        }
    }
    __u16 family = 0;
    if (bpf_probe_read_user(&family, sizeof(family), (void *)uaddr))
        return -1;
    si->family = family;
    si->flags = 0;
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

/* fd (0-2) now refers to something that is not a socket: a tombstone stops the lookup of the
 * parent's entry (sock_inherited) for it */
static __always_inline void sock_tombstone(__u32 tgid, int fd)
{
    struct sock_info none = {};
    sock_put(tgid, fd, &none);
}

/* The inet/inet6 socket on stdio fd (0-2) of the current process: its own entry, else the
 * one inherited from its parent; 0 when fd is not a known network socket. */
static __always_inline struct sock_info *stdio_net(__u32 tgid, int fd)
{
    struct sock_info *si = sock_entry(tgid, fd);
    if (!si)
        si = sock_inherited(tgid, fd);
    if (!si) {
        __u32 *owner = fd_sharers.lookup(&tgid);   /* the table's, changed by a sharer */
        if (owner)
            si = sock_entry(*owner, fd);
    }
    if (!si || (si->family != 2 && si->family != 10))
        return 0;
    return si;
}

/* 1 when the current task's name is a shell or interpreter (shell_comms) */
static __always_inline int comm_is_shell(void)
{
    struct comm_key k = {};
    bpf_get_current_comm(k.comm, sizeof(k.comm));
    return shell_comms.lookup(&k) ? 1 : 0;
}

#define FD_PATH_HEAD 32   /* enough for "/proc/thread-self/fd/" or "/proc/<7 digits>/fd/" and 5 digits */

/* 1 when p[6] .. p[6 + len - 1] are decimal digits (len a constant after inlining) */
static __always_inline int proc_digits(const char *p, const int len)
{
    int ok = 1;
#pragma unroll
    for (int i = 0; i < 7; i++) {
        if (i < len && (p[6 + i] < '0' || p[6 + i] > '9'))
            ok = 0;
    }
    return ok;
}

/* up to 5 decimal digits at p + off ending the string, else -1; read at constant indices (off
 * is a constant after inlining): the verifier rejects a masked variable index into a stack
 * buffer, and clang may turn `p + off` into an OR on the stack pointer, which it refuses too */
static __always_inline int parse_fd_at(const char *p, const int off)
{
    int fd = 0;
#pragma unroll
    for (int k = 0; k < 6; k++) {
        char c = p[off + k];
        if (c == 0)
            return k ? fd : -1;
        if (c < '0' || c > '9' || k == 5)
            return -1;
        fd = fd * 10 + (c - '0');
    }
    return -1;
}

/* "/dev/fd/N", "/proc/self/fd/N", "/proc/thread-self/fd/N" or "/proc/<pid>/fd/N" -> N, else
 * -1; p holds FD_PATH_HEAD bytes */
static __always_inline int fd_from_path(const char *p)
{
    if (p[0] == '/' && p[1] == 'd' && p[2] == 'e' && p[3] == 'v' && p[4] == '/' && p[5] == 'f' &&
        p[6] == 'd' && p[7] == '/')
        return parse_fd_at(p, 8);
    if (!(p[0] == '/' && p[1] == 'p' && p[2] == 'r' && p[3] == 'o' && p[4] == 'c' && p[5] == '/'))
        return -1;
    if (p[6] == 's' && p[7] == 'e' && p[8] == 'l' && p[9] == 'f' && p[10] == '/' && p[11] == 'f' &&
        p[12] == 'd' && p[13] == '/')
        return parse_fd_at(p, 14);
    if (p[6] == 't' && p[7] == 'h' && p[8] == 'r' && p[9] == 'e' && p[10] == 'a' && p[11] == 'd' &&
        p[12] == '-' && p[13] == 's' && p[14] == 'e' && p[15] == 'l' && p[16] == 'f' &&
        p[17] == '/' && p[18] == 'f' && p[19] == 'd' && p[20] == '/')
        return parse_fd_at(p, 21);
    /* "/proc/<pid>/fd/N": the pid is the caller's own as its pid namespace numbers it (or its
     * parent's), which the probes cannot compare with the host's; the fd is looked up in the
     * caller's and its parent's entries either way. One check per pid length, each reading the
     * buffer at constant indices (see parse_fd_at) */
#define PROC_PID_FD(len)                                                                    \
    if (proc_digits(p, len) && p[6 + len] == '/' && p[7 + len] == 'f' && p[8 + len] == 'd' && \
        p[9 + len] == '/')                                                                  \
        return parse_fd_at(p, 10 + len);
    PROC_PID_FD(1)
    PROC_PID_FD(2)
    PROC_PID_FD(3)
    PROC_PID_FD(4)
    PROC_PID_FD(5)
    PROC_PID_FD(6)
    PROC_PID_FD(7)
#undef PROC_PID_FD
    return -1;
}

/* clears the bit of (fd, kind); 1 when it was set */
static __always_inline int fd_unmark(struct fd_marks *m, __u32 kind, __u64 bit)
{
    if (kind >= FDM_KINDS || !(m->bits[kind] & bit))
        return 0;
    __sync_fetch_and_and(&m->bits[kind], ~bit);
    return 1;
}

/* the fd is gone (close, or replaced by dup2/dup3): its entries are deleted, from the maps
 * its marks name when it has them (a marked fd_files entry is kept, as closed: see fd_marks).
 * Returns 0 when it had no socket entry (so no net_aggs) */
static __always_inline int fd_forget(__u32 tgid, int fd)
{
    struct fd_key k = {.tgid = tgid, .fd = fd};
    struct fd_marks *m = (fd >= 0 && fd < FD_MARK_FDS) ? fd_marks.lookup(&tgid) : 0;
    if (m) {
        __u64 bit = 1ULL << (fd & (FD_MARK_FDS - 1));
        if (m->bits[FDM_FILE] & bit)
            file_close(&k);   /* the bit stays: the entry does */
        if (fd_unmark(m, FDM_MEMFD, bit))
            memfds.delete(&k);
        if (fd_unmark(m, FDM_BOUND, bit))
            bound_fds.delete(&k);
        if (fd_unmark(m, FDM_DIR, bit))
            dir_fds.delete(&k);
        if (fd_unmark(m, FDM_CHAN, bit))
            chan_fds.delete(&k);
        if (!fd_unmark(m, FDM_SOCK, bit))
            return 0;
        sock_fds.delete(&k);
        return 1;
    }
    fd_files.delete(&k);
    sock_fds.delete(&k);
    memfds.delete(&k);
    bound_fds.delete(&k);
    dir_fds.delete(&k);
    chan_fds.delete(&k);
    return 1;
}

/* At the process's exit: its fd_files entries that fd_forget kept (see fd_marks) go */
static __always_inline void file_entries_drop(__u32 tgid)
{
    struct fd_marks *m = fd_marks.lookup(&tgid);
    if (!m)
        return;
    __u64 bits = m->bits[FDM_FILE];
    struct fd_key k = {.tgid = tgid};
    for (int fd = 0; fd < FD_MARK_FDS && bits; fd++) {
        if (bits & 1) {
            k.fd = fd;
            fd_files.delete(&k);
        }
        bits >>= 1;
    }
}

/* ---- pipe, fifo and pty ends (pipe.bpf.c makes them, file.bpf.c opens them, net.bpf.c's dups
 * copy them): like sockets, an entry dies with its fd and a child finds its parent's entries
 * made before it forked. */
static __always_inline void chan_put(__u32 tgid, int fd, struct chan_info *ci)
{
    struct fd_key k = {.tgid = tgid, .fd = fd};
    struct chan_fd v = {};
    __builtin_memcpy(&v.ci, ci, sizeof(v.ci));
    v.gen = entry_gen(tgid, fd);
    v.since = bpf_ktime_get_ns();
    fd_mark(tgid, fd, FDM_CHAN);
    chan_fds.update(&k, &v);
}

/* At fork, the parent's ends on fds below FORK_CHAN_FDS are copied to the child: a shell
 * closes the ends it handed to a child and makes the next pipe on the same numbers at once,
 * before the child has run its dup2, so a lookup of the parent's entries from the child finds
 * the next pipe or nothing. Ends on higher fds are found through the parent's entries
 * (chan_get) while the parent keeps them. Runs in the parent, for processes in scope only. */
#ifndef FORK_CHAN_FDS
#define FORK_CHAN_FDS 16
#endif
static __always_inline void chan_fork_copy(__u32 parent, __u32 child)
{
    __u64 pgen = fd_gen(parent);
#pragma unroll
    for (int fd = 0; fd < FORK_CHAN_FDS; fd++) {
        struct fd_key k = {.tgid = parent, .fd = fd};
        struct chan_fd *v = chan_fds.lookup(&k);
        if (!v || (v->gen && v->gen != pgen))
            continue;
        struct chan_info ci;
        __builtin_memcpy(&ci, &v->ci, sizeof(ci));
        chan_put(child, fd, &ci);
    }
}

/* the current process's pipe/fifo/pty end on fd, its own or inherited; 0 when none is known */
/* an id no other pipe or pty has: the clock, the CPU in the low 6 bits */
static __always_inline __u64 chan_new_id(void)
{
    return (bpf_ktime_get_ns() & ~0x3fULL) | (bpf_get_smp_processor_id() & 0x3f);
}

/* Pipes are made as often as processes (every shell pipeline, every captured subprocess): their
 * records go on the bulk ring, where a flood of them cannot crowd out execs and connects.
 * Fifo and pty ends are rare and go on the high-priority ring. */
static __always_inline void chan_event_send(__u64 scope_id, long ret, int fd, int fd2, __u32 op,
                                            __u32 pty, struct chan_info *ci)
{
    struct chan_event *e;
    int bulk = op == CHAN_OP_PIPE || op == CHAN_OP_SOCKPAIR;
    e = bulk ? reserve_bulk(sizeof(*e), EVT_CHAN, scope_id) : reserve_hi(sizeof(*e), EVT_CHAN, scope_id);
    if (!e)
        return;
    fill_hdr(&e->hdr, EVT_CHAN, scope_id);
    e->ret = ret;
    e->fd = fd;
    e->fd2 = fd2;
    e->op = op;
    e->pty = pty;
    e->pad = 0;
    __builtin_memcpy(&e->chan, ci, sizeof(e->chan));
    if (bulk)
        events_bulk.ringbuf_submit(e, bulk_submit_flags());
    else
        events_hi.ringbuf_submit(e, WAKE_LATER);
}

static __always_inline struct chan_info *chan_get(__u32 tgid, int fd)
{
    struct fd_key k = {.tgid = tgid, .fd = fd};
    struct chan_fd *v = chan_fds.lookup(&k);
    if (v) {
        if (!v->gen || v->gen == fd_gen(tgid))
            return &v->ci;
        chan_fds.delete(&k);
        return 0;
    }
    if (sock_entry(tgid, fd))       /* a socket or a tombstone of its own: not the parent's */
        return 0;
    __u32 *pp = parents.lookup(&tgid);
    if (!pp)
        return 0;
    __u64 born = fd_gen(tgid);
    k.tgid = *pp;
    v = chan_fds.lookup(&k);
    if (!v || !born || v->since >= born || (v->gen && v->gen != fd_gen(*pp)))
        return 0;
    return &v->ci;
}


/* ---- what an fd is, as one value: copied by dups (net.bpf.c fd_copy) and carried by a
 * unix socket's SCM_RIGHTS message from sender to receiver (io.bpf.c, net.bpf.c) ---- */
struct fd_state {
    struct sock_info sock;   /* family 0: no network or unix socket known */
    struct file_key file;    /* kind 0: no file opened with write intent or sensitive */
    struct chan_info chan;   /* kind 0: no pipe, fifo, pty or socketpair end */
};

/* The state of fd `fd` of process `src` into *st (zeroed by the caller): its own socket entry,
 * else its parent's made before it forked (forked, then dup'ed the parent's socket); the file
 * it writes; the pipe, fifo or pty end it is when it is no socket. */
static __always_inline void fd_state_read(__u32 src, int fd, struct fd_state *st)
{
    struct sock_info *si = sock_get(src, fd);
    if (!si && !sock_entry(src, fd))
        si = sock_inherited(src, fd);
    if (si)
        __builtin_memcpy(&st->sock, si, sizeof(st->sock));
    struct file_key *fk = file_get(src, fd);
    if (fk)
        __builtin_memcpy(&st->file, fk, sizeof(st->file));
    struct chan_info *ci = si ? 0 : chan_get(src, fd);
    if (ci)
        __builtin_memcpy(&st->chan, ci, sizeof(st->chan));
}

/* ---- fds passed over a unix socket (sendmsg/recvmsg with SCM_RIGHTS) ----
 * struct file cannot be read here, so what the receiver got is matched to what a sender sent
 * through our own maps: a message's fd states wait in scm_msgs under a key both ends know, the
 * id of their socketpair (chan_info.id of CHAN_SOCKPAIR, the same for both ends) or, for a unix
 * socket we know nothing of (connect/accept on a path, a pair made out of scope), the scope
 * alone. One message waits per key: a second send meeting one not yet received marks the slot
 * SCM_UNSURE, and the receiver then gets no state (never a wrong one); so does a receiver whose
 * message holds another number of fds than the waiting one. The receiver takes the slot.
 * A message waits from sendmsg's entry: the receiver may run before the sender's exit (a
 * blocked recvmsg wakes inside sendmsg); a send that fails takes its message back at exit.
 * The scope-wide slot is shared by every unix socket of the scope we know nothing of, and a
 * message received out of scope (a host daemon's end) stays in it: older than
 * SCM_SCOPE_WAIT_NS it gives no state. */
#define SOL_SOCKET_V 1
#define SCM_RIGHTS_V 1
#define SCM_FDS 4          /* fd states carried per message: the first SCM_FDS fds (net.bpf.c's
                            * scm_recv lands them one by one, by constant index) */
#define SCM_CMSGS 4        /* control messages looked at before the SCM_RIGHTS one */
#define SCM_UNSURE 1
#ifndef SCM_SCOPE_WAIT_NS
#define SCM_SCOPE_WAIT_NS 1000000000ULL
#endif
struct scm_key {
    __u64 scope_id;
    __u64 pair_id;         /* the socketpair's id, 0: the scope-wide slot */
};
struct scm_msg {
    struct scm_key key;    /* where it goes (scm_pending: at sendmsg's exit) */
    __u32 nfds;            /* fds in the SCM_RIGHTS message */
    __u32 flags;           /* SCM_UNSURE */
    __u32 sender;          /* the sender's tgid */
    __s32 fds[SCM_FDS];    /* the sender's fd numbers */
    __u32 pad;
    __u64 stamp;           /* when it was sent: which send a slot holds */
    struct fd_state st[SCM_FDS];
};
/* a send in flight, per thread: its slot, taken back if the send fails */
struct scm_pend {
    struct scm_key key;
    __u64 stamp;
};
BPF_TABLE("lru_hash", struct scm_key, struct scm_msg, scm_msgs, 1024);
BPF_TABLE("lru_hash", __u32, struct scm_pend, scm_pending, 1024);
BPF_PERCPU_ARRAY(scm_scratch, struct scm_msg, 1);

struct user_msghdr_head {   /* struct msghdr (user, 64-bit) */
    __u64 name;
    __u32 namelen;
    __u32 pad;
    __u64 iov;
    __u64 iovlen;
    __u64 control;
    __u64 controllen;
    __s32 flags;
    __u32 pad2;
};
struct user_cmsghdr {
    __u64 len;
    __s32 level;
    __s32 type;
};

/* The fd numbers of the message's SCM_RIGHTS control message (the first SCM_FDS into fds);
 * returns how many it holds, 0 when it has none, -1 when it could not be read. */
static __always_inline int scm_rights_read(__u64 control, __u64 controllen, __s32 *fds)
{
    __u64 off = 0;
#pragma unroll
    for (int i = 0; i < SCM_CMSGS; i++) {
        struct user_cmsghdr c = {};
        if (off + sizeof(c) > controllen)
            return 0;
        if (bpf_probe_read_user(&c, sizeof(c), (void *)(control + off)))
            return -1;
        if (c.len < sizeof(c) || c.len > controllen - off)
            return -1;
        if (c.level == SOL_SOCKET_V && c.type == SCM_RIGHTS_V) {
            __u64 n = (c.len - sizeof(c)) / sizeof(__s32);
#pragma unroll
            for (int k = 0; k < SCM_FDS; k++) {
                if (k >= n)
                    break;
                if (bpf_probe_read_user(&fds[k], sizeof(__s32),
                                        (void *)(control + off + sizeof(c) + k * sizeof(__s32))))
                    return -1;
            }
            return (int)n;
        }
        off += (c.len + 7) & ~7ULL;
    }
    return 0;
}

/* the slot of a message sent or received on unix socket fd of process tgid */
static __always_inline void scm_key_of(__u32 tgid, int fd, __u64 scope_id, struct scm_key *k)
{
    struct chan_info *ci = chan_get(tgid, fd);
    k->scope_id = scope_id;
    k->pair_id = (ci && ci->kind == CHAN_SOCKPAIR) ? ci->id : 0;
}

#endif
