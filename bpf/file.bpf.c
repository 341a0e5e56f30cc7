/* file.bpf.c - file opens with write intent, reads of sensitive paths, rename, unlink, chmod.
 *
 * Hooks:
 *   syscalls:sys_enter/exit_openat, openat2, open, creat (x86-64: the entries of openat, open
 *       and creat come from priv.bpf.c's raw sys_enter instead, dispatch_entry)
 *       write intent (O_WRONLY, O_RDWR, O_CREAT, O_TRUNC) -> aggregated per (process, path) in
 *       file_aggs: the first open sends EVT_FILE_OPEN on the bulk ring, repeats only count (an
 *       open/write/close loop of 300k iterations sends one record); reads whose path matches the
 *       sensitive prefix or suffix tries (filled by user space from the rules) -> EVT_FILE_OPEN
 *       with kind SENSITIVE on the high-priority ring, aggregated the same way
 *   syscalls:sys_enter/exit_rename, renameat, renameat2, unlink, unlinkat, chmod, fchmodat,
 *       fchmodat2, fchmod -> one record each on the bulk ring (a create/unlink flood must not
 *       crowd execs out), except a chmod that sets setuid/setgid: high-priority ring
 *       (fchmod, and fchmodat2 with AT_EMPTY_PATH: the fd's path from dir_fds or file_aggs)
 *   syscalls:sys_enter/exit_link, linkat, symlink, symlinkat -> EVT_LINK (bulk ring)
 *   syscalls:sys_enter/exit_truncate -> EVT_FILE_OPEN kind TRUNCATE (the O_WRONLY|O_TRUNC open
 *       it amounts to); ftruncate of an fd opened with write intent in scope -> the same, once
 *       per (process, path) (bulk ring)
 *   syscalls:sys_enter/exit_chown, lchown, fchownat, fchown -> EVT_PRIV op CHOWN (uid, gid,
 *       path; fchown: the fd's path from dir_fds or file_aggs) (bulk ring)
 *   syscalls:sys_enter/exit_chdir, fchdir -> EVT_CHDIR (bulk ring): user space keeps each
 *       process's cwd and resolves relative and *at() paths (coi_sentinel/probes/paths.py)
 *   syscalls:sys_enter/exit_utimensat with chosen times (not "now") on a file the caller did not
 *       write -> EVT_UTIME (bulk ring): a file made to look older or like another (touch -d,
 *       touch -r, os.utime); a copy keeping its source's times (cp -p, tar x, rsync: the
 *       caller wrote the file, or created it with O_EXCL/O_TRUNC) is not sent
 *   syscalls:sys_enter/exit_mknod, mknodat with S_IFIFO -> the fifo's path hash (fifo_paths);
 *       opens of such a path, of /dev/ptmx and of /dev/pts/N -> EVT_CHAN (see pipe.bpf.c)
 *   a read-only open of an absolute path spelled with "//", "/./", "/../" or under
 *       /proc/<pid>/root that matched nothing is matched again on its canonical form
 *       (open_exit_respelled, a tail call): /etc//shadow is /etc/shadow
 *   opens of /proc/<pid>/mem -> EVT_PRIV op proc_mem_open; O_TMPFILE opens and unlinked paths
 *       are remembered for exec.bpf.c (EXEC_FROM_TMPFILE, EXEC_UNLINKED)
 * The path is read on syscall exit: the kernel has faulted the caller's page in by then.
 * Directories: O_DIRECTORY and O_PATH opens keep their path for *at() calls (dir_fds), and so
 *       do read-only O_NOFOLLOW / O_NONBLOCK opens (a tree walker's, tar's: note_maybe_dir).
 * Blind spots: paths are sent as the caller wrote them and resolved in user space (the
 * in-kernel sensitive-prefix set only matches absolute paths; suffixes match both); a dirfd
 * opened in another way (a plain O_RDONLY open of a directory) is unknown to the kernel: its
 * path is read from /proc when the event is handled (a process that closed it or exited by
 * then leaves the path relative); paths past PATH_LEN are truncated; files opened through
 * io_uring (uring.bpf.c reports the op) or name_to_handle_at; utimes, futimesat and utime
 * (the older time calls; coreutils and the language runtimes use utimensat); times set on
 * directories by the extractor that made them (no mkdir hook: they are sent).
 */
#include "scope.h"

#define O_ACCMODE_V 00000003
#define O_CREAT_V 00000100
#define O_TRUNC_V 00001000
#define O_TMPFILE_V 020200000   /* __O_TMPFILE | O_DIRECTORY */
#define FAILED_KIND 0x100

struct open_scratch {
    char path[PATH_LEN];
    struct lpm_path_key lpm;
};
BPF_PERCPU_ARRAY(open_scratch_map, struct open_scratch, 1);
BPF_PERCPU_ARRAY(agg_scratch, struct file_agg, 1);

struct compose_scratch {
    char buf[PATH_LEN * 2];
    struct dir_path dp;
};
BPF_PERCPU_ARRAY(compose_map, struct compose_scratch, 1);
#define O_DIRECTORY_V 00200000
#define AT_FDCWD_V (-100)
#define O_PATH_V 010000000

/* see PATH_HASH_INIT in events.h; `path` is zero-padded past its NUL */
static __always_inline __u64 path_hash(const char *path, int len)
{
    __u64 h = PATH_HASH_INIT;
#pragma unroll
    for (int i = 0; i < PATH_LEN / 8; i++) {
        if (i * 8 >= len)
            break;
        __u64 w = *(const __u64 *)(path + i * 8);
        h = (h ^ w) * PATH_HASH_PRIME;
    }
    return h;
}
BPF_LPM_TRIE(sens_prefix, struct lpm_path_key, __u8, 1024);
BPF_LPM_TRIE(sens_suffix, struct lpm_path_key, __u8, 1024);
BPF_ARRAY(sens_sizes, __u32, 2);   /* entries in sens_prefix, sens_suffix (0: skip the lookup) */

/* an open's entry in scope (also called by priv.bpf.c's raw sys_enter, see dispatch_entry) */
static __always_inline void open_stash(__u64 scope_id, int dfd, const char *filename, __u64 flags,
                                       __u64 mode)
{
    stash(ST_OPEN, scope_id, (__u64)(__s64)dfd, (__u64)filename, flags, mode);
}

static __always_inline void open_enter(int dfd, const char *filename, __u64 flags, __u64 mode)
{
    __u64 scope_id = 0;
    if (in_scope(&scope_id))
        open_stash(scope_id, dfd, filename, flags, mode);
}

/* 1 when the path (len bytes incl. NUL, zero-padded) matches a sensitive prefix or suffix.
 * Each lookup is skipped while its set is empty (sens_sizes). */
static __always_inline int is_sensitive(struct open_scratch *sc, int len)
{
    __u32 zero = 0, one = 1;
    __u32 *np = sens_sizes.lookup(&zero);
    __u32 *ns = sens_sizes.lookup(&one);
    if (np && *np) {
        sc->lpm.prefixlen = PATH_LEN * 8;
        __builtin_memcpy(sc->lpm.data, sc->path, PATH_LEN);
        if (sens_prefix.lookup(&sc->lpm))
            return 1;
    }
    if (!ns || !*ns)
        return 0;
    int n = len - 1;   /* characters without the NUL */
    if (n <= 0)
        return 0;
    sc->lpm.prefixlen = PATH_LEN * 8;
    /* constant indices only (a loop that breaks at n gets rewritten into a pointer walk the
     * verifier cannot bound), and no branch: past n the index wraps onto the path's NUL and
     * zero padding, which no suffix contains (a branch per byte made the verifier walk the
     * rest of the program once per possible length) */
#pragma unroll
    for (int i = 0; i < PATH_LEN; i++)
        sc->lpm.data[i] = sc->path[(n - 1 - i) & (PATH_LEN - 1)];
    return sens_suffix.lookup(&sc->lpm) ? 1 : 0;
}

/* ---- another spelling of a path: "//", "/./", "/../", /proc/<pid>/root ----
 * The sensitive tries match the path as written, and a read-only open is sent only when they
 * match: /etc//shadow, /etc/./shadow, /../etc/shadow or /proc/self/root/etc/shadow would read
 * the file unseen. An absolute path that did not match is scanned a word at a time for those
 * spellings (path_respelled: a few ALU operations per 8 bytes); only one that has one is
 * rewritten to its canonical form (canon_path: a byte loop) and matched again; the record then
 * has the canonical path. Symlinks are not followed (that needs the kernel's structures). */
#define BYTES_7F 0x7f7f7f7f7f7f7f7fULL
#define BYTES_SLASH 0x2f2f2f2f2f2f2f2fULL
#define BYTES_DOT 0x2e2e2e2e2e2e2e2eULL
/* the high bit of each byte of v that is zero, exactly */
static __always_inline __u64 zero_bytes(__u64 v)
{
    return ~(((v & BYTES_7F) + BYTES_7F) | v | BYTES_7F);
}

/* 1 when the absolute path (zero-padded, len bytes with the NUL) has "//", "/./", "/../" (or
 * ends "/." or "/..") or starts "/proc/" */
static __always_inline int path_respelled(const char *p, int len)
{
    __u64 w = *(const __u64 *)p;
    if ((w & 0xffffffffffffULL) == 0x2f636f72702fULL)   /* "/proc/" */
        return 1;
    __u64 found = 0;
#pragma clang loop unroll(disable)
    for (int i = 0; i < PATH_LEN / 8 - 1; i++) {
        if (i * 8 >= len)
            break;
        __u32 off = (i * 8) & (PATH_LEN - 8);
        __u64 cur = *(const __u64 *)(p + off);
        __u64 nxt = *(const __u64 *)(p + off + 8);
        __u64 a1 = (cur >> 8) | (nxt << 56);     /* the byte after each byte */
        __u64 a2 = (cur >> 16) | (nxt << 48);
        __u64 a3 = (cur >> 24) | (nxt << 40);
        __u64 slash = zero_bytes(cur ^ BYTES_SLASH);
        __u64 dot1 = zero_bytes(a1 ^ BYTES_DOT);
        __u64 end2 = zero_bytes(a2 ^ BYTES_SLASH) | zero_bytes(a2);
        __u64 end3 = zero_bytes(a3 ^ BYTES_SLASH) | zero_bytes(a3);
        found |= slash & (zero_bytes(a1 ^ BYTES_SLASH) | (dot1 & end2) |
                          (dot1 & zero_bytes(a2 ^ BYTES_DOT) & end3));
    }
    return found != 0;
}

#define CANON_DEPTH 16
struct canon_scratch {
    char out[PATH_LEN];
    __u32 j;              /* bytes written to out */
    __u32 depth;          /* components in out */
    __u32 skip;           /* input bytes still to skip */
    __u32 pad;
    __u32 starts[CANON_DEPTH];   /* where each component's '/' is in out */
};
BPF_PERCPU_ARRAY(canon_map, struct canon_scratch, 1);

/* The canonical form of the absolute path p (zero-padded): "//" and "/./" dropped, "/x/.."
 * folded, "/proc/<pid|self|thread-self>/root" dropped from its head, written back into p.
 * Returns its length with the NUL, 0 when it was left alone (deeper than CANON_DEPTH). The
 * loop's state lives in the scratch map (volatile), so the verifier sees one state per
 * iteration. Cost: ~1.4 us for a 60-byte path (only paths path_respelled picked run it). */
static __always_inline int canon_path(char *p)
{
    __u32 zero = 0;
    /* volatile: every use reloads the state from the map (clang would keep it in registers,
     * whose exact values would make the verifier walk each path apart) */
    volatile struct canon_scratch *c = canon_map.lookup(&zero);
    if (!c)
        return 0;
    c->j = 0;
    c->depth = 0;
    c->skip = 0;
#pragma clang loop unroll(disable)
    for (int i = 0; i < PATH_LEN - 1; i++) {
        char ch = p[i & (PATH_LEN - 1)];
        if (ch == 0)
            break;
        if (c->skip) {
            c->skip--;
            continue;
        }
        if (ch == '/') {
            char c1 = p[(i + 1) & (PATH_LEN - 1)];
            char c2 = p[(i + 2) & (PATH_LEN - 1)];
            char c3 = p[(i + 3) & (PATH_LEN - 1)];
            if (c1 == '/' || (c1 == 0 && c->j))
                continue;                              /* "//", a trailing '/' */
            if (c1 == '.' && (c2 == '/' || c2 == 0)) {
                c->skip = 1;                           /* "/." */
                continue;
            }
            if (c1 == '.' && c2 == '.' && (c3 == '/' || c3 == 0)) {
                c->skip = 2;                           /* "/..": back to the parent */
                __u32 d = c->depth;
                if (d) {
                    d--;
                    c->depth = d;
                    c->j = c->starts[d & (CANON_DEPTH - 1)];
                }
                continue;
            }
            __u32 d = c->depth;
            if (d >= CANON_DEPTH) {
                c->j = PATH_LEN;          /* too deep to fold: left alone */
                c->skip = PATH_LEN;
                continue;
            }
            c->starts[d & (CANON_DEPTH - 1)] = c->j;
            c->depth = d + 1;
        }
        __u32 j = c->j;
        c->out[j & (PATH_LEN - 1)] = ch;
        c->j = j + 1;
    }
    __u32 j = c->j;
    if (j >= PATH_LEN - 1)
        return 0;
    if (j == 0)
        c->out[j++] = '/';
    asm volatile("" : "+r"(j));   /* keep the mask: the verifier needs it, clang drops it */
    c->out[j & (PATH_LEN - 1)] = 0;
    /* /proc/<pid|self|thread-self>/root/...: the process's root, here the same as / */
    __u32 from = 0;
    char *o = (char *)c->out;
    if (c->depth >= 3 && o[0] == '/' && o[1] == 'p' && o[2] == 'r' && o[3] == 'o' && o[4] == 'c' &&
        o[5] == '/') {
        __u32 root = c->starts[2];   /* the third component: "/root"? */
        asm volatile("" : "+r"(root));
        root &= (PATH_LEN - 1);
        char *q = o + root;
        if (root < PATH_LEN - 6 && q[0] == '/' && q[1] == 'r' && q[2] == 'o' && q[3] == 'o' &&
            q[4] == 't') {
            if (q[5] == '/') {
                from = root + 5;
            } else if (q[5] == 0) {
                q[1] = 0;   /* "/proc/self/root" is "/" */
                from = root;
            }
        }
    }
    __builtin_memset(p, 0, PATH_LEN);
    int n = bpf_probe_read_kernel_str(p, PATH_LEN, o + (from & (PATH_LEN - 1)));
    return n > 0 ? n : 0;
}

/* A read-only open of an absolute path that matched nothing as written but has another
 * spelling goes on in a program of its own (open_exit_respelled, through open_tails): the
 * byte loop of canon_path costs the verifier ~240k instructions, paid once there instead of
 * in each of the four open-exit programs (a probe set loaded ~5 s slower with it inline).
 * What that program needs of the open is kept here per CPU (a tail call does not return;
 * nothing else runs on this CPU between the call and the program). */
struct open_pending {
    struct inflight s;
    long ret;
    __u32 flags;
    int len;
};
BPF_PERCPU_ARRAY(open_pending_map, struct open_pending, 1);
BPF_PROG_ARRAY(open_tails, 1);

/* "/proc/<pid or self or thread-self>/mem": len counts the NUL */
static __always_inline int is_proc_mem(const char *p, int len)
{
    if (len < 11 || len > 40)
        return 0;
    if (p[0] != '/' || p[1] != 'p' || p[2] != 'r' || p[3] != 'o' || p[4] != 'c' || p[5] != '/')
        return 0;
    int n = len - 1;
    return p[(n - 4) & (PATH_LEN - 1)] == '/' && p[(n - 3) & (PATH_LEN - 1)] == 'm' &&
           p[(n - 2) & (PATH_LEN - 1)] == 'e' && p[(n - 1) & (PATH_LEN - 1)] == 'm';
}

/* an open of /proc/<pid>/mem: a priv event (reading or writing another process's memory) */
static __always_inline void proc_mem_event(struct inflight *s, long ret, __u32 flags, const char *path)
{
    struct priv_event *e = priv_reserve(1, s->scope_id, ret, PRIV_PROC_MEM_OPEN, flags, 0);
    if (!e)
        return;
    bpf_probe_read_kernel_str(e->str, PATH_LEN, path);
    events_hi.ringbuf_submit(e, WAKE_NOW);
}

/* path (len bytes with the NUL, in a PATH_LEN buffer) relative to dirfd: rewritten in place
 * (zero-padded) as the dirfd's directory + "/" + path when that directory is known (dir_fds;
 * AT_FDCWD: the cwd, kept under fd -100 from chdir/fchdir, else the parent's). Returns the
 * new length. "." and ".." are left for user space to fold. */
static __always_inline int join_dirfd(char *path, int len, int dirfd)
{
    if ((dirfd < 0 && dirfd != AT_FDCWD_V) || len <= 1 || path[0] == '/')
        return len;
    struct fd_key k = {.tgid = current_tgid(), .fd = dirfd};
    struct dir_path *d = dir_fds.lookup(&k);
    if (!d && dirfd == AT_FDCWD_V) {
        /* no chdir of its own seen: the cwd it inherited (its parent's, as known now) */
        __u32 *pp = parents.lookup(&k.tgid);
        if (pp) {
            k.tgid = *pp;
            d = dir_fds.lookup(&k);
        }
    }
    if (!d)
        return len;
    __u32 zero = 0;
    struct compose_scratch *c = compose_map.lookup(&zero);
    if (!c)
        return len;
    __u32 off = d->len;
    if (off == 0 || off >= PATH_LEN - 1)
        return len;
    asm volatile("" : "+r"(off));   /* keep the mask: the verifier needs it, clang drops it */
    off &= (PATH_LEN - 1);
    __builtin_memcpy(c->buf, d->path, PATH_LEN);
    c->buf[off] = '/';
    int n = bpf_probe_read_kernel_str(c->buf + off + 1, PATH_LEN, path);
    if (n <= 0)
        return len;
    __builtin_memset(path, 0, PATH_LEN);
    bpf_probe_read_kernel_str(path, PATH_LEN, c->buf);
    int total = (int)off + 1 + n;
    return total > PATH_LEN ? PATH_LEN : total;
}

/* a directory opened in scope: remember its path for *at() and fchdir */
static __always_inline void note_dir(int fd, const char *path, int len)
{
    __u32 zero = 0;
    struct compose_scratch *c = compose_map.lookup(&zero);
    if (!c || len <= 1)
        return;
    c->dp.len = (__u32)(len - 1);
    c->dp.pad = 0;
    __builtin_memcpy(c->dp.path, path, PATH_LEN);
    struct fd_key k = {.tgid = current_tgid(), .fd = fd};
    fd_mark(k.tgid, fd, FDM_DIR);
    dir_fds.update(&k, &c->dp);
}

/* A read-only open without O_DIRECTORY may still be of a directory that then serves as a
 * dirfd: GNU tar opens each directory it walks with O_RDONLY|O_NOFOLLOW|O_NONBLOCK and the
 * files in it relative to that fd (openat(4, "credentials")). Such opens - O_NOFOLLOW or
 * O_NONBLOCK, what a tree walker passes and a program reading a file does not - keep their
 * resolved path like a directory's (dir_fds), so what is opened through them is joined to it.
 * A regular file's entry is never used as a dirfd (ENOTDIR) and goes at its close. */
#define O_NONBLOCK_V 00004000
#define O_NOFOLLOW_V 00400000
static __always_inline void note_maybe_dir(long ret, __u32 flags, const char *path, int len)
{
    if (ret >= 0 && (flags & (O_NOFOLLOW_V | O_NONBLOCK_V)) && path[0] == '/')
        note_dir((int)ret, path, len);
}

/* The path of a stashed call (a[0] its dirfd, a[1] the user pointer), read into the per-CPU
 * scratch and joined to its directory; *len gets its length with the NUL. 0 when unreadable. */
static __always_inline struct open_scratch *stashed_path(struct inflight *s, int *len)
{
    __u32 zero = 0;
    struct open_scratch *sc = open_scratch_map.lookup(&zero);
    if (!sc)
        return 0;
    __builtin_memset(sc->path, 0, sizeof(sc->path));
    int n = bpf_probe_read_user_str(sc->path, PATH_LEN, (void *)s->a[1]);
    if (n <= 0)
        return 0;
    *len = join_dirfd(sc->path, n, (int)s->a[0]);
    return sc;
}

/* An open of a pty master (/dev/ptmx, /dev/pts/ptmx), a pty slave (/dev/pts/N: its master
 * from pty_ids when TIOCGPTN was seen) or a fifo made in scope (its path hash in fifo_paths):
 * the fd becomes a chan_fds entry and EVT_CHAN op open is sent (pipe.bpf.c). */
static __always_inline void chan_open(__u64 scope_id, long ret, __u32 flags, const char *p, int len)
{
    struct chan_info ci = {};
    __u32 pty = 0xffffffffU;
    if (p[0] == '/' && p[1] == 'd' && p[2] == 'e' && p[3] == 'v' && p[4] == '/' && p[5] == 'p' &&
        p[6] == 't') {
        if ((p[7] == 'm' && p[8] == 'x' && p[9] == 0) ||
            (p[7] == 's' && p[8] == '/' && p[9] == 'p' && p[10] == 't' && p[11] == 'm' && p[12] == 'x' &&
             p[13] == 0)) {
            ci.id = chan_new_id();
            ci.end = CHAN_MASTER;
        } else if (p[7] == 's' && p[8] == '/') {
            int n = parse_fd_at(p, 9);
            if (n < 0)
                return;
            struct pty_key k = {.scope_id = scope_id, .num = (__u32)n};
            __u64 *id = pty_ids.lookup(&k);
            ci.id = id ? *id : 0;
            ci.end = CHAN_SLAVE;
            pty = (__u32)n;
        } else {
            return;
        }
        ci.kind = CHAN_PTY;
    } else {
        __u32 zero = 0;
        __u64 *made = fifo_count.lookup(&zero);
        if (!made || !*made)
            return;
        __u64 h = path_hash(p, len);
        if (!fifo_paths.lookup(&h))
            return;
        __u32 acc = flags & O_ACCMODE_V;
        ci.id = h;
        ci.kind = CHAN_FIFO;
        ci.end = acc == 0 ? CHAN_READ : acc == 1 ? CHAN_WRITE : CHAN_RDWR;
    }
    chan_put(current_tgid(), (int)ret, &ci);
    chan_event_send(scope_id, ret, (int)ret, -1, CHAN_OP_OPEN, pty, &ci);
}

/* a read-only open that is not reported: a file this process wrote is remembered with the
 * fd (an exec through it after an unlink is seen: EXEC_UNLINKED), a directory's path kept */
static __always_inline void open_plain(long ret, __u32 flags, struct open_scratch *sc, int len)
{
    if (ret >= 0) {
        struct file_key wk = {.tgid = current_tgid(), .kind = FILE_KIND_WRITE};
        wk.path_hash = path_hash(sc->path, len);
        if (file_aggs.lookup(&wk))
            file_put(wk.tgid, (int)ret, &wk);
    }
    note_maybe_dir(ret, flags, sc->path, len);
}

static __always_inline void open_record(struct inflight *sp, long ret, __u32 flags,
                                        struct open_scratch *sc, int len, __u32 kind);

static __always_inline void open_exit(void *ctx, long ret)
{
    struct inflight s;
    if (!unstash(ST_OPEN, &s))
        return;
    __u32 flags = (__u32)s.a[2];
    __u32 zero = 0;
    int len = 0;
    struct open_scratch *sc = stashed_path(&s, &len);
    if (!sc)
        return;
    if (ret >= 0 && !(flags & (O_DIRECTORY_V | O_PATH_V)))
        chan_open(s.scope_id, ret, flags, sc->path, len);
    if (ret >= 0 && (flags & O_TMPFILE_V) != O_TMPFILE_V && (flags & (O_DIRECTORY_V | O_PATH_V))) {
        note_dir((int)ret, sc->path, len);
        return;
    }
    if (ret >= 0 && (flags & O_TMPFILE_V) == O_TMPFILE_V) {
        struct fd_key fk = {.tgid = current_tgid(), .fd = (int)ret};
        __u32 anon = ANON_TMPFILE;
        fd_mark(fk.tgid, fk.fd, FDM_MEMFD);
        memfds.update(&fk, &anon);
    } else if (ret >= 0 && sc->path[0] == '/' && (sc->path[1] == 'p' || sc->path[1] == 'd')) {
        /* a nameless file reopened through /proc/self/fd/N (a read-only fd to exec: the
         * writable one would make the exec fail with ETXTBSY) is as nameless as N */
        int from = fd_from_path(sc->path);
        if (from >= 0) {
            struct fd_key fk = {.tgid = current_tgid(), .fd = from};
            __u32 *anon = memfds.lookup(&fk);
            if (anon) {
                __u32 copy = *anon;
                fk.fd = (int)ret;
                fd_mark(fk.tgid, fk.fd, FDM_MEMFD);
                memfds.update(&fk, &copy);
            }
        }
    }
    if (is_proc_mem(sc->path, len))
        proc_mem_event(&s, ret, flags, sc->path);
    __u32 kind;
    if ((flags & O_ACCMODE_V) || (flags & (O_CREAT_V | O_TRUNC_V)))
        kind = FILE_KIND_WRITE;
    else if (is_sensitive(sc, len))
        kind = FILE_KIND_SENSITIVE;
    else {
        if (sc->path[0] == '/' && path_respelled(sc->path, len)) {
            struct open_pending *pend = open_pending_map.lookup(&zero);
            if (pend) {
                __builtin_memcpy(&pend->s, &s, sizeof(s));
                pend->ret = ret;
                pend->flags = flags;
                pend->len = len;
                open_tails.call(ctx, 0);
            }
            /* no program there (a failed load says so in coverage): as written */
        }
        open_plain(ret, flags, sc, len);
        return;
    }
    open_record(&s, ret, flags, sc, len, kind);
}

/* a write-intent or sensitive open: counted in file_aggs, reported the first time */
static __always_inline void open_record(struct inflight *sp, long ret, __u32 flags,
                                        struct open_scratch *sc, int len, __u32 kind)
{
    __u32 zero = 0;
    struct inflight s = *sp;
    __u32 tgid = current_tgid();
    struct file_key key = {.tgid = tgid, .kind = kind | (ret < 0 ? FAILED_KIND : 0)};
    key.path_hash = path_hash(sc->path, len);
    __u64 now = bpf_ktime_get_ns();
    struct file_agg *a = file_aggs.lookup(&key);
    if (a) {
        __sync_fetch_and_add(&a->opens, 1);
        a->last_ts = now;
    } else {
        struct file_agg *fresh = agg_scratch.lookup(&zero);
        if (!fresh)
            return;
        fresh->first_ts = now;
        fresh->last_ts = now;
        fresh->bytes = 0;
        fresh->scope_id = s.scope_id;
        fresh->cgroup_id = bpf_get_current_cgroup_id();
        fresh->opens = 1;
        fresh->writes = 0;
        fresh->flags = flags;
        fresh->uid = (__u32)bpf_get_current_uid_gid();
        __builtin_memcpy(fresh->path, sc->path, PATH_LEN);
        if (file_aggs.update(&key, fresh))
            count_agg_full(0);
    }
    if (ret >= 0 && kind == FILE_KIND_WRITE)
        file_put(tgid, (int)ret, &key);
    if (a)
        return;   /* already reported: counted, not sent again */

    struct file_open_event *e;
    if (kind == FILE_KIND_SENSITIVE) {
        if (!(e = reserve_hi(sizeof(*e), EVT_FILE_OPEN, s.scope_id)))
            return;
    } else {
        if (!(e = reserve_bulk(sizeof(*e), EVT_FILE_OPEN, s.scope_id)))
            return;
    }
    fill_hdr(&e->hdr, EVT_FILE_OPEN, s.scope_id);
    e->ret = ret;
    e->dirfd = (__s32)s.a[0];
    e->flags = flags;
    e->mode = (__u32)s.a[3];
    e->kind = kind;
    e->pad = 0;
    __builtin_memcpy(e->path, sc->path, PATH_LEN);
    if (kind == FILE_KIND_SENSITIVE)
        events_hi.ringbuf_submit(e, WAKE_NOW);
    else
        events_bulk.ringbuf_submit(e, bulk_submit_flags());
}

/* the rest of an open whose path has another spelling (see open_pending): matched again on
 * its canonical form, which the record then carries */
int open_exit_respelled(void *ctx)
{
    __u32 zero = 0;
    struct open_pending *pend = open_pending_map.lookup(&zero);
    struct open_scratch *sc = open_scratch_map.lookup(&zero);
    if (!pend || !sc)
        return 0;
    struct inflight s = pend->s;
    long ret = pend->ret;
    __u32 flags = pend->flags;
    int len = pend->len;
    int n = canon_path(sc->path);
    if (n > 0 && is_sensitive(sc, n)) {
        open_record(&s, ret, flags, sc, n, FILE_KIND_SENSITIVE);
        return 0;
    }
    open_plain(ret, flags, sc, n > 0 ? n : len);
    return 0;
}

#ifdef TP_syscalls__sys_enter_openat
TRACEPOINT_PROBE(syscalls, sys_enter_openat)
{
    open_enter(args->dfd, args->filename, (__u64)args->flags, (__u64)args->mode);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_exit_openat
TRACEPOINT_PROBE(syscalls, sys_exit_openat)
{
    open_exit(args, args->ret);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_enter_openat2
TRACEPOINT_PROBE(syscalls, sys_enter_openat2)
{
    __u64 how[2] = {};
    bpf_probe_read_user(how, sizeof(how), (void *)args->how);   /* struct open_how {flags, mode} */
    open_enter(args->dfd, args->filename, how[0], how[1]);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_exit_openat2
TRACEPOINT_PROBE(syscalls, sys_exit_openat2)
{
    open_exit(args, args->ret);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_enter_open
TRACEPOINT_PROBE(syscalls, sys_enter_open)
{
    open_enter(-100, args->filename, (__u64)args->flags, (__u64)args->mode);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_exit_open
TRACEPOINT_PROBE(syscalls, sys_exit_open)
{
    open_exit(args, args->ret);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_enter_creat
TRACEPOINT_PROBE(syscalls, sys_enter_creat)
{
    open_enter(-100, args->pathname, O_CREAT_V | O_TRUNC_V | 1, (__u64)args->mode);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_exit_creat
TRACEPOINT_PROBE(syscalls, sys_exit_creat)
{
    open_exit(args, args->ret);
    return 0;
}
#endif

/* ---- rename ---- */
static __always_inline void rename_enter(const char *oldp, const char *newp, __u32 flags,
                                         int olddfd, int newdfd)
{
    __u64 scope_id = 0;
    if (in_scope(&scope_id))
        stash(ST_RENAME, scope_id, (__u64)oldp, (__u64)newp, flags,
              ((__u64)(__u32)olddfd << 32) | (__u32)newdfd);
}

/* EVT_RENAME and EVT_LINK: both paths joined to their dirfds (s->a[3]: olddfd << 32 | newdfd),
 * the old one only when it is a path (not a symlink's text) */
static __always_inline void two_paths_exit(struct inflight *s, __u32 type, long ret, int old_is_path)
{
    struct rename_event *e;
    if (!(e = reserve_bulk(sizeof(*e), type, s->scope_id)))
        return;
    fill_hdr(&e->hdr, type, s->scope_id);
    e->ret = ret;
    e->flags = (__u32)s->a[2];
    e->oldpath[0] = 0;
    e->newpath[0] = 0;
    int n = read_user_path(e->oldpath, (void *)s->a[0]);
    if (old_is_path)
        join_dirfd(e->oldpath, n, (__s32)(s->a[3] >> 32));
    n = read_user_path(e->newpath, (void *)s->a[1]);
    join_dirfd(e->newpath, n, (__s32)(__u32)s->a[3]);
    events_bulk.ringbuf_submit(e, bulk_submit_flags());
}

static __always_inline void rename_exit(long ret)
{
    struct inflight s;
    if (unstash(ST_RENAME, &s))
        two_paths_exit(&s, EVT_RENAME, ret, 1);
}

#ifdef TP_syscalls__sys_enter_rename
TRACEPOINT_PROBE(syscalls, sys_enter_rename)
{
    rename_enter(args->oldname, args->newname, 0, AT_FDCWD_V, AT_FDCWD_V);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_exit_rename
TRACEPOINT_PROBE(syscalls, sys_exit_rename)
{
    rename_exit(args->ret);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_enter_renameat
TRACEPOINT_PROBE(syscalls, sys_enter_renameat)
{
    rename_enter(args->oldname, args->newname, 0, (int)args->olddfd, (int)args->newdfd);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_exit_renameat
TRACEPOINT_PROBE(syscalls, sys_exit_renameat)
{
    rename_exit(args->ret);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_enter_renameat2
TRACEPOINT_PROBE(syscalls, sys_enter_renameat2)
{
    rename_enter(args->oldname, args->newname, args->flags, (int)args->olddfd, (int)args->newdfd);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_exit_renameat2
TRACEPOINT_PROBE(syscalls, sys_exit_renameat2)
{
    rename_exit(args->ret);
    return 0;
}
#endif

/* The path of an fd with no path of its own in the call (fchdir, fchmod, fchmodat2 with
 * AT_EMPTY_PATH on an O_PATH fd): a directory's or O_PATH open's (dir_fds), else, when `files`,
 * a file opened with write intent (its file_aggs entry). Returns the length with the NUL, 0
 * when the open was not seen. */
static __always_inline int fd_path(__u32 tgid, int fd, char *dst, int files)
{
    struct fd_key k = {.tgid = tgid, .fd = fd};
    struct dir_path *d = dir_fds.lookup(&k);
    if (d) {
        __builtin_memcpy(dst, d->path, PATH_LEN);
        return (int)(d->len & (PATH_LEN - 1)) + 1;
    }
    struct file_key *fk = files ? file_get(tgid, fd) : 0;
    struct file_agg *a = fk ? file_aggs.lookup(fk) : 0;
    if (!a)
        return 0;
    int n = bpf_probe_read_kernel_str(dst, PATH_LEN, a->path);
    return n > 0 ? n : 0;
}

/* The file a call names by a path (s->a[1], 0 for none) relative to a dirfd (s->a[0]), into
 * dst: joined to the dirfd's directory when it is known; with no name and `by_fd`, the fd's
 * own path (fd_path; `files`: a file opened with write intent too). Returns the length. */
static __always_inline int call_path(struct inflight *s, char *dst, int by_fd, int files)
{
    __builtin_memset(dst, 0, PATH_LEN);
    int len = 0;
    if (s->a[1]) {
        len = bpf_probe_read_user_str(dst, PATH_LEN, (void *)s->a[1]);
        if (len > 0)
            len = join_dirfd(dst, len, (__s32)s->a[0]);
    }
    if (len <= 1 && by_fd)
        len = fd_path(current_tgid(), (__s32)s->a[0], dst, files);
    return len;
}

/* ---- unlink and chmod: one path, an fd and a number ---- */
static __always_inline void path_enter(__u32 kind, int fd, const char *path, __u32 num)
{
    __u64 scope_id = 0;
    if (in_scope(&scope_id))
        stash(kind, scope_id, (__u64)(__s64)fd, (__u64)path, num, 0);
}

static __always_inline void path_exit(__u32 kind, __u32 type, long ret)
{
    struct inflight s;
    if (!unstash(kind, &s))
        return;
    __u32 zero = 0;
    struct open_scratch *sc = open_scratch_map.lookup(&zero);
    if (!sc)
        return;
    __u32 tgid = current_tgid();
    int len = call_path(&s, sc->path, type == EVT_CHDIR || type == EVT_CHMOD, type == EVT_CHMOD);
    if (type == EVT_UNLINK && ret == 0 && len > 0) {
        /* its hash goes to unlinked_paths: an exec through an fd still open on the file is
         * then recognised (exec.bpf.c, EXEC_UNLINKED) */
        __u64 h = path_hash(sc->path, len);
        __u8 one = 1;
        unlinked_paths.update(&h, &one);
    }
    if (type == EVT_CHDIR && ret == 0) {
        /* the new cwd, for AT_FDCWD-relative paths (join_dirfd); unknown when relative */
        if (len > 1 && sc->path[0] == '/') {
            note_dir(AT_FDCWD_V, sc->path, len);
        } else {
            struct fd_key k = {.tgid = tgid, .fd = AT_FDCWD_V};
            dir_fds.delete(&k);
        }
    }
    /* a file flood (create + unlink loops) must not crowd execs out of the high-priority
     * ring: unlink and plain chmod go to the bulk ring, a chmod setting setuid/setgid does not */
    int urgent = type == EVT_CHMOD && (s.a[2] & 06000);
    struct path_event *e;
    if (urgent)
        e = reserve_hi(sizeof(*e), type, s.scope_id);
    else
        e = reserve_bulk(sizeof(*e), type, s.scope_id);
    if (!e)
        return;
    fill_hdr(&e->hdr, type, s.scope_id);
    e->ret = ret;
    e->fd = (__s32)s.a[0];
    e->mode = (__u32)s.a[2];
    e->pad = 0;
    __builtin_memcpy(e->path, sc->path, PATH_LEN);
    if (urgent)
        events_hi.ringbuf_submit(e, WAKE_NOW);
    else
        events_bulk.ringbuf_submit(e, bulk_submit_flags());
}

#ifdef TP_syscalls__sys_enter_unlink
TRACEPOINT_PROBE(syscalls, sys_enter_unlink)
{
    path_enter(ST_UNLINK, -100, args->pathname, 0);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_exit_unlink
TRACEPOINT_PROBE(syscalls, sys_exit_unlink)
{
    path_exit(ST_UNLINK, EVT_UNLINK, args->ret);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_enter_unlinkat
TRACEPOINT_PROBE(syscalls, sys_enter_unlinkat)
{
    path_enter(ST_UNLINK, args->dfd, args->pathname, args->flag);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_exit_unlinkat
TRACEPOINT_PROBE(syscalls, sys_exit_unlinkat)
{
    path_exit(ST_UNLINK, EVT_UNLINK, args->ret);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_enter_chmod
TRACEPOINT_PROBE(syscalls, sys_enter_chmod)
{
    path_enter(ST_CHMOD, -100, args->filename, args->mode);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_exit_chmod
TRACEPOINT_PROBE(syscalls, sys_exit_chmod)
{
    path_exit(ST_CHMOD, EVT_CHMOD, args->ret);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_enter_fchmodat
TRACEPOINT_PROBE(syscalls, sys_enter_fchmodat)
{
    path_enter(ST_CHMOD, args->dfd, args->filename, args->mode);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_exit_fchmodat
TRACEPOINT_PROBE(syscalls, sys_exit_fchmodat)
{
    path_exit(ST_CHMOD, EVT_CHMOD, args->ret);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_enter_fchmodat2
TRACEPOINT_PROBE(syscalls, sys_enter_fchmodat2)
{
    path_enter(ST_CHMOD, args->dfd, args->filename, args->mode);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_exit_fchmodat2
TRACEPOINT_PROBE(syscalls, sys_exit_fchmodat2)
{
    path_exit(ST_CHMOD, EVT_CHMOD, args->ret);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_enter_fchmod
TRACEPOINT_PROBE(syscalls, sys_enter_fchmod)
{
    path_enter(ST_CHMOD, (int)args->fd, 0, args->mode);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_exit_fchmod
TRACEPOINT_PROBE(syscalls, sys_exit_fchmod)
{
    path_exit(ST_CHMOD, EVT_CHMOD, args->ret);
    return 0;
}
#endif

/* ---- truncate, ftruncate: a file emptied (or cut) with no open that says so ----
 * truncate(path) opens nothing: a log wiped so had no record at all. It is sent as the open it
 * amounts to, EVT_FILE_OPEN with flags O_WRONLY|O_TRUNC and kind FILE_KIND_TRUNCATE (dirfd
 * -100, the path joined to the cwd when known), so the rules on destructive write opens see it.
 * ftruncate(fd) only when the fd is a file opened with write intent in scope (its file_aggs
 * entry: the path is known; any other fd is not looked at), once per (process, path): the entry
 * gets O_TRUNC in its flags, and an entry whose open had O_TRUNC already said so. Both on the
 * bulk ring. Outside every scope each costs the scope check. Blind spots: fallocate
 * (FALLOC_FL_PUNCH_HOLE, _COLLAPSE_RANGE), io_uring's ftruncate (uring.bpf.c reports the op),
 * ftruncate of an fd whose open was not seen (opened before the scope, or passed in). */
static __always_inline void truncate_exit(long ret)
{
    struct inflight s;
    if (!unstash(ST_TRUNCATE, &s))
        return;
    __u32 zero = 0;
    struct open_scratch *sc = open_scratch_map.lookup(&zero);
    if (!sc)
        return;
    int fd = (__s32)s.a[0];
    if (s.a[1]) {
        call_path(&s, sc->path, 0, 0);
    } else {
        __u32 tgid = current_tgid();
        struct file_key *fk = file_get(tgid, fd);
        struct file_agg *a = fk ? file_aggs.lookup(fk) : 0;
        if (!a || (a->flags & O_TRUNC_V))
            return;
        if (ret == 0)
            a->flags |= O_TRUNC_V;
        __builtin_memset(sc->path, 0, PATH_LEN);
        bpf_probe_read_kernel_str(sc->path, PATH_LEN, a->path);
    }
    struct file_open_event *e = reserve_bulk(sizeof(*e), EVT_FILE_OPEN, s.scope_id);
    if (!e)
        return;
    fill_hdr(&e->hdr, EVT_FILE_OPEN, s.scope_id);
    e->ret = ret;
    e->dirfd = fd;
    e->flags = 1 | O_TRUNC_V;          /* O_WRONLY|O_TRUNC: what the call amounts to */
    e->mode = 0;
    e->kind = FILE_KIND_TRUNCATE;
    e->pad = 0;
    __builtin_memcpy(e->path, sc->path, PATH_LEN);
    events_bulk.ringbuf_submit(e, bulk_submit_flags());
}

#if defined(TP_syscalls__sys_enter_truncate) && defined(TP_syscalls__sys_exit_truncate)
TRACEPOINT_PROBE(syscalls, sys_enter_truncate)
{
    __u64 scope_id = 0;
    if (in_scope(&scope_id))
        stash(ST_TRUNCATE, scope_id, (__u64)(__s64)AT_FDCWD_V, (__u64)args->path, 0, 0);
    return 0;
}
TRACEPOINT_PROBE(syscalls, sys_exit_truncate)
{
    truncate_exit(args->ret);
    return 0;
}
#endif
#if defined(TP_syscalls__sys_enter_ftruncate) && defined(TP_syscalls__sys_exit_ftruncate)
TRACEPOINT_PROBE(syscalls, sys_enter_ftruncate)
{
    __u64 scope_id = 0;
    if (in_scope(&scope_id))
        stash(ST_TRUNCATE, scope_id, (__u64)(__s64)(int)args->fd, 0, 0, 0);
    return 0;
}
TRACEPOINT_PROBE(syscalls, sys_exit_ftruncate)
{
    truncate_exit(args->ret);
    return 0;
}
#endif

/* ---- chown, lchown, fchownat, fchown: a file's owner changed (EVT_PRIV op PRIV_CHOWN) ----
 * arg0 the uid, arg1 the gid asked for ((uid_t)-1 leaves one unchanged), str the path joined
 * to its dirfd (fchown, and fchownat with AT_EMPTY_PATH: the fd's path when its open was seen
 * in scope, else empty). Bulk ring: chown -R of a tree is one record per file. */
static __always_inline void chown_enter(int fd, const char *path, __u32 uid, __u32 gid)
{
    __u64 scope_id = 0;
    if (in_scope(&scope_id))
        stash(ST_CHOWN, scope_id, (__u64)(__s64)fd, (__u64)path, uid, gid);
}

static __always_inline void chown_exit(long ret)
{
    struct inflight s;
    if (!unstash(ST_CHOWN, &s))
        return;
    __u32 zero = 0;
    struct open_scratch *sc = open_scratch_map.lookup(&zero);
    if (!sc)
        return;
    call_path(&s, sc->path, 1, 1);
    struct priv_event *e = priv_reserve(0, s.scope_id, ret, PRIV_CHOWN, s.a[2], s.a[3]);
    if (!e)
        return;
    __builtin_memcpy(e->str, sc->path, PATH_LEN);
    events_bulk.ringbuf_submit(e, bulk_submit_flags());
}

#define CHOWN_HOOKS(name, fd, path)                                                         \
    TRACEPOINT_PROBE(syscalls, sys_enter_##name)                                            \
    {                                                                                       \
        chown_enter((fd), (path), (__u32)args->user, (__u32)args->group);                   \
        return 0;                                                                           \
    }                                                                                       \
    TRACEPOINT_PROBE(syscalls, sys_exit_##name)                                             \
    {                                                                                       \
        chown_exit(args->ret);                                                              \
        return 0;                                                                           \
    }

#if defined(TP_syscalls__sys_enter_chown) && defined(TP_syscalls__sys_exit_chown)
CHOWN_HOOKS(chown, AT_FDCWD_V, args->filename)
#endif
#if defined(TP_syscalls__sys_enter_lchown) && defined(TP_syscalls__sys_exit_lchown)
CHOWN_HOOKS(lchown, AT_FDCWD_V, args->filename)
#endif
#if defined(TP_syscalls__sys_enter_fchownat) && defined(TP_syscalls__sys_exit_fchownat)
CHOWN_HOOKS(fchownat, (int)args->dfd, args->filename)
#endif
#if defined(TP_syscalls__sys_enter_fchown) && defined(TP_syscalls__sys_exit_fchown)
CHOWN_HOOKS(fchown, (int)args->fd, 0)
#endif

/* ---- link, linkat, symlink, symlinkat: a new name for a file (EVT_LINK, rename_event) ---- */
static __always_inline void link_enter(const char *oldp, const char *newp, __u32 flags, int olddfd,
                                       int newdfd)
{
    __u64 scope_id = 0;
    if (in_scope(&scope_id))
        stash(ST_LINK, scope_id, (__u64)oldp, (__u64)newp, flags,
              ((__u64)(__u32)olddfd << 32) | (__u32)newdfd);
}

static __always_inline void link_exit(long ret)
{
    struct inflight s;
    if (unstash(ST_LINK, &s))
        two_paths_exit(&s, EVT_LINK, ret, !((__u32)s.a[2] & LINK_SYMLINK));
}

#define LINK_HOOKS(name, oldp, newp, flags, olddfd, newdfd)                                 \
    TRACEPOINT_PROBE(syscalls, sys_enter_##name)                                            \
    {                                                                                       \
        link_enter(oldp, newp, flags, olddfd, newdfd);                                      \
        return 0;                                                                           \
    }                                                                                       \
    TRACEPOINT_PROBE(syscalls, sys_exit_##name)                                             \
    {                                                                                       \
        link_exit(args->ret);                                                               \
        return 0;                                                                           \
    }

#if defined(TP_syscalls__sys_enter_link) && defined(TP_syscalls__sys_exit_link)
LINK_HOOKS(link, args->oldname, args->newname, 0, AT_FDCWD_V, AT_FDCWD_V)
#endif
#if defined(TP_syscalls__sys_enter_linkat) && defined(TP_syscalls__sys_exit_linkat)
LINK_HOOKS(linkat, args->oldname, args->newname, (__u32)args->flags, (int)args->olddfd, (int)args->newdfd)
#endif
#if defined(TP_syscalls__sys_enter_symlink) && defined(TP_syscalls__sys_exit_symlink)
LINK_HOOKS(symlink, args->oldname, args->newname, LINK_SYMLINK, AT_FDCWD_V, AT_FDCWD_V)
#endif
#if defined(TP_syscalls__sys_enter_symlinkat) && defined(TP_syscalls__sys_exit_symlinkat)
LINK_HOOKS(symlinkat, args->oldname, args->newname, LINK_SYMLINK, AT_FDCWD_V, (int)args->newdfd)
#endif

/* ---- mknod(S_IFIFO): fifos made in scope, so their opens become chan_fds entries ---- */
#define S_IFMT_V 0170000
#define S_IFIFO_V 0010000

static __always_inline void mkfifo_enter(int dfd, const char *path, __u64 mode)
{
    if ((mode & S_IFMT_V) != S_IFIFO_V)
        return;
    __u64 scope_id = 0;
    if (in_scope(&scope_id))
        stash(ST_MKFIFO, scope_id, (__u64)(__s64)dfd, (__u64)path, 0, 0);
}

static __always_inline void mkfifo_exit(long ret)
{
    struct inflight s;
    if (!unstash(ST_MKFIFO, &s) || ret != 0)
        return;
    int len = 0;
    struct open_scratch *sc = stashed_path(&s, &len);
    if (!sc)
        return;
    __u64 h = path_hash(sc->path, len);
    __u32 zero = 0;
    __u8 one = 1;
    fifo_paths.update(&h, &one);
    __u64 *made = fifo_count.lookup(&zero);
    if (made)
        __sync_fetch_and_add(made, 1);
}

#ifdef TP_syscalls__sys_enter_mknodat
TRACEPOINT_PROBE(syscalls, sys_enter_mknodat)
{
    mkfifo_enter(args->dfd, args->filename, (__u64)args->mode);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_exit_mknodat
TRACEPOINT_PROBE(syscalls, sys_exit_mknodat)
{
    mkfifo_exit(args->ret);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_enter_mknod
TRACEPOINT_PROBE(syscalls, sys_enter_mknod)
{
    mkfifo_enter(AT_FDCWD_V, args->filename, (__u64)args->mode);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_exit_mknod
TRACEPOINT_PROBE(syscalls, sys_exit_mknod)
{
    mkfifo_exit(args->ret);
    return 0;
}
#endif

/* ---- chdir, fchdir: user space follows each process's cwd to resolve relative paths ---- */
#ifdef TP_syscalls__sys_enter_chdir
TRACEPOINT_PROBE(syscalls, sys_enter_chdir)
{
    path_enter(ST_CHDIR, -100, args->filename, 0);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_exit_chdir
TRACEPOINT_PROBE(syscalls, sys_exit_chdir)
{
    path_exit(ST_CHDIR, EVT_CHDIR, args->ret);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_enter_fchdir
TRACEPOINT_PROBE(syscalls, sys_enter_fchdir)
{
    path_enter(ST_CHDIR, (int)args->fd, 0, 0);
    return 0;
}
#endif
#ifdef TP_syscalls__sys_exit_fchdir
TRACEPOINT_PROBE(syscalls, sys_exit_fchdir)
{
    path_exit(ST_CHDIR, EVT_CHDIR, args->ret);
    return 0;
}
#endif

/* ---- utimensat with chosen times: timestamps forged (touch -d / -r, os.utime) ----
 * Kept apart from the hooks above. Times "now" (a NULL array, or UTIME_NOW twice) are never
 * sent, nor times set on a file the caller wrote bytes to or created with O_EXCL or O_TRUNC
 * (a copy keeps its source's times: cp -p, tar x, rsync, unzip, npm): file_aggs says so. */
#define UTIME_NOW_V ((1l << 30) - 1l)
#define UTIME_OMIT_V ((1l << 30) - 2l)
#define O_EXCL_V 00000200

#if defined(TP_syscalls__sys_enter_utimensat) && defined(TP_syscalls__sys_exit_utimensat)
TRACEPOINT_PROBE(syscalls, sys_enter_utimensat)
{
    if (!args->utimes)
        return 0;
    __u64 scope_id = 0;
    if (in_scope(&scope_id))
        stash(ST_UTIME, scope_id, (__u64)(__s64)args->dfd, (__u64)args->filename, (__u64)args->utimes,
              (__u64)args->flags);
    return 0;
}

/* 1 when the caller wrote the file itself (its write-open key, from the path or the fd) */
static __always_inline int utime_of_own_copy(struct file_agg *a)
{
    return a && (a->bytes || (a->flags & (O_EXCL_V | O_TRUNC_V)));
}

TRACEPOINT_PROBE(syscalls, sys_exit_utimensat)
{
    struct inflight s;
    if (!unstash(ST_UTIME, &s))
        return 0;
    __s64 ts[4] = {};     /* struct timespec[2]: {sec, nsec} x 2 */
    if (bpf_probe_read_user(ts, sizeof(ts), (void *)s.a[2]))
        return 0;
    __u32 how = 0;
    if (ts[1] != UTIME_NOW_V && ts[1] != UTIME_OMIT_V)
        how |= UTIME_SET_ATIME;
    if (ts[3] != UTIME_NOW_V && ts[3] != UTIME_OMIT_V)
        how |= UTIME_SET_MTIME;
    if (!how)
        return 0;
    __u32 tgid = current_tgid();
    struct file_key key = {.tgid = tgid, .kind = FILE_KIND_WRITE};
    struct file_agg *a = 0;
    int len = 0;
    struct open_scratch *sc = 0;
    if (s.a[1]) {
        sc = stashed_path(&s, &len);
        if (!sc)
            return 0;
        key.path_hash = path_hash(sc->path, len);
        a = file_aggs.lookup(&key);
    } else {
        struct file_key *fk = file_get(tgid, (int)s.a[0]);
        a = fk ? file_aggs.lookup(fk) : 0;
    }
    if (utime_of_own_copy(a))
        return 0;
    __s64 past = (__s64)(bpf_ktime_get_tai_ns() / 1000000000ULL) - UTIME_PAST_S;
    if (((how & UTIME_SET_ATIME) && ts[0] < past) || ((how & UTIME_SET_MTIME) && ts[2] < past))
        how |= UTIME_BACKDATED;
    struct utime_event *e;
    if (!(e = reserve_bulk(sizeof(*e), EVT_UTIME, s.scope_id)))
        return 0;
    fill_hdr(&e->hdr, EVT_UTIME, s.scope_id);
    e->ret = args->ret;
    e->fd = (__s32)s.a[0];
    e->flags = (__u32)s.a[3];
    e->how = how;
    e->atime = (how & UTIME_SET_ATIME) ? ts[0] : 0;
    e->mtime = (how & UTIME_SET_MTIME) ? ts[2] : 0;
    e->path[0] = 0;
    if (sc)
        bpf_probe_read_kernel_str(e->path, PATH_LEN, sc->path);
    else if (a)
        bpf_probe_read_kernel_str(e->path, PATH_LEN, a->path);
    events_bulk.ringbuf_submit(e, bulk_submit_flags());
    return 0;
}
#endif
