/* events.h - the records the probes send to user space.
 *
 * Every struct here has an explicit ctypes mirror in coi_sentinel/events/structs.py and a root
 * test (tests/bpf/test_layout.py) compares the two against what bcc derived from this file.
 * Layout rules: fixed-width types only, explicit padding, every struct a multiple of 8 bytes.
 * Event type numbers are part of the trace format: never renumber or reuse one.
 */
#ifndef COI_EVENTS_H
#define COI_EVENTS_H

#define COMM_LEN 16
#define PATH_LEN 256      /* file names and paths, NUL-terminated, truncated past this */
#define ARG_LEN 256       /* one argv string at most */
#define ARGS_ROOM 768     /* argv bytes copied start only below this offset ... */
#define ARGS_BUF 1024     /* ... so the last copy (ARG_LEN) always fits: ARGS_ROOM + ARG_LEN */
#define MAX_ARGS 32
#define UNIX_PATH_LEN 108

enum event_type {
    EVT_EXEC = 1,
    EVT_FORK = 2,
    EVT_EXIT = 3,
    EVT_CONNECT = 4,
    EVT_DUP = 5,
    EVT_NET_SEND = 6,    /* summary of bytes sent on one socket fd, built from net_aggs */
    EVT_FILE_OPEN = 7,
    EVT_FILE_WRITE = 8,  /* summary of opens/writes of one file, built from file_aggs */
    EVT_RENAME = 9,
    EVT_UNLINK = 10,
    EVT_CHMOD = 11,
    EVT_PRIV = 12,       /* a privileged / escape-relevant syscall (ptrace, mount, ...) */
    EVT_CONNECT_REPEAT = 13, /* summary of repeated identical connects, built from conn_aggs */
    EVT_ACCEPT = 14,     /* accept/accept4: a connection received (sock_event) */
    EVT_BIND = 15,       /* bind of an inet/inet6 socket (sock_event) */
    EVT_LISTEN = 16,     /* listen (sock_event: the bound address, when bind was seen) */
    EVT_URING = 17,      /* an io_uring submission of a watched opcode (uring_event) */
    EVT_LINK = 18,       /* link, linkat, symlink, symlinkat (rename_event layout) */
    EVT_CHDIR = 19,      /* chdir / fchdir (path_event): user space follows the cwd */
    EVT_MMAP_WRITE = 20, /* a writable shared mapping of a file (mmap_event) */
    EVT_CHAN = 21,       /* a pipe, fifo or pty end came into being in a process (chan_event) */
    EVT_UTIME = 22,      /* utimensat with chosen times on a file the caller did not write (utime_event) */
    /* 14..39 probes, 40..49 detection */
    EVT_MAX = 64,        /* size of the per-type drop counter array */
};

/* exec_event.flags */
#define EXEC_ARGS_TRUNCATED     (1u << 0)
#define EXEC_FILENAME_TRUNCATED (1u << 1)
#define EXEC_VIA_FD             (1u << 2)  /* execveat(AT_EMPTY_PATH) or /dev/fd/N, /proc/self/fd/N */
#define EXEC_FROM_MEMFD         (1u << 3)  /* ... and that fd came from memfd_create */
#define EXEC_ARGS_FROM_CALLER   (1u << 4)  /* failed exec: argv read from the caller's memory */
#define EXEC_KILLED             (1u << 5)  /* the kernel sent SIGKILL (kill policy) */
#define EXEC_FROM_TMPFILE       (1u << 6)  /* via an fd opened with O_TMPFILE (never had a name) */
#define EXEC_UNLINKED           (1u << 7)  /* via an fd whose path was unlinked after the open */
#define EXEC_STDIO_SOCKET       (1u << 8)  /* fd 0 or 1 is an inet/inet6 socket at exec */

/* connect_event.flags */
#define CONNECT_KILLED          (1u << 0)  /* the kernel sent SIGKILL (kill policy: blocked dest) */
#define CONNECT_FASTOPEN        (1u << 1)  /* sendto(MSG_FASTOPEN): a connect with data, no connect() */
#define CONNECT_SENDTO          (1u << 2)  /* sendto/sendmsg with a destination address (a datagram
                                            * sent without connect): the first send to it */

/* sock_info.flags */
#define SOCK_ACCEPTED           (1u << 0)  /* came from accept/accept4 (addr is the peer) */
#define SOCK_LOCAL_ADDR         (1u << 1)  /* addr/port are the local (bound) ones */

/* uring_event.flags */
#define URING_KILLED            (1u << 0)  /* the kernel sent SIGKILL (kill policy: uring connect) */
#define URING_SQPOLL            (1u << 1)  /* submitted by the SQPOLL kernel thread */

/* rename_event.flags for EVT_LINK */
#define LINK_SYMLINK            (1u << 16) /* symlink/symlinkat: oldpath is the link's target text */

/* file_open_event.kind and file_key.kind */
#define FILE_KIND_WRITE     1   /* O_WRONLY / O_RDWR / O_CREAT / O_TRUNC */
#define FILE_KIND_SENSITIVE 2   /* read of a path in the sensitive prefix/suffix sets */
#define FILE_KIND_TRUNCATE  3   /* truncate(path), or ftruncate of an fd opened with write intent
                                 * in scope: flags O_WRONLY|O_TRUNC, ret 0 or -errno, dirfd -100
                                 * or the ftruncate fd (file_open_event only, never aggregated) */

/* dup_event.flags */
#define DUP_OLDFD_SOCKET (1u << 0)  /* oldfd is a socket this process (or its parent) connected */
#define DUP_KILLED       (1u << 1)  /* the kernel sent SIGKILL (a shell put a net socket on 0/1) */
#define DUP_FD_KINDS     (1u << 2)  /* the probe tracks fd kinds: no DUP_OLDFD_SOCKET and chan.kind
                                     * 0 is the kernel's word that oldfd is no socket, pipe, fifo
                                     * or pty it saw (records without this flag predate fd kinds) */

/* chan_info.kind: pipes, fifos and ptys, tracked per (process, fd) like sockets */
#define CHAN_PIPE 1
#define CHAN_FIFO 2
#define CHAN_PTY  3
#define CHAN_SOCKPAIR 4     /* socketpair(AF_UNIX): both ends CHAN_RDWR */
/* chan_info.end */
#define CHAN_READ   1       /* pipe read end, fifo opened O_RDONLY */
#define CHAN_WRITE  2       /* pipe write end, fifo opened O_WRONLY */
#define CHAN_RDWR   3       /* fifo opened O_RDWR */
#define CHAN_MASTER 4       /* pty master (/dev/ptmx) */
#define CHAN_SLAVE  5       /* pty slave (/dev/pts/N, ioctl TIOCGPTPEER) */

/* chan_event.op: how the fd came to be */
#define CHAN_OP_PIPE   1    /* pipe, pipe2: fd is the read end, fd2 the write end */
#define CHAN_OP_OPEN   2    /* open of a fifo made in scope, /dev/ptmx or /dev/pts/N */
#define CHAN_OP_PTPEER 3    /* ioctl(master, TIOCGPTPEER): fd2 is the master */
#define CHAN_OP_SOCKPAIR 4  /* socketpair(AF_UNIX): fd and fd2, both ends */

/* priv_event.op */
enum priv_op {
    PRIV_PTRACE = 1,
    PRIV_MOUNT = 2,
    PRIV_UNSHARE = 3,
    PRIV_SETNS = 4,
    PRIV_INIT_MODULE = 5,
    PRIV_FINIT_MODULE = 6,
    PRIV_IO_URING_SETUP = 7,
    PRIV_MEMFD_CREATE = 8,
    PRIV_SETUID = 9,
    PRIV_BPF = 10,
    PRIV_PROCESS_VM_READV = 11,
    PRIV_PROCESS_VM_WRITEV = 12,
    PRIV_PROC_MEM_OPEN = 13,    /* open of /proc/<pid>/mem */
    PRIV_SET_FILE_CAP = 14,     /* setxattr/lsetxattr/fsetxattr of security.capability */
    PRIV_IO_URING_REGISTER = 15,
    PRIV_PIDFD_GETFD = 16,      /* another process's fd copied (arg0 its pid, 0 unknown; arg1 its fd) */
    PRIV_OPEN_BY_HANDLE_AT = 17,/* an open by file handle: no path, no open hook (arg0 mount fd) */
    PRIV_NAME_TO_HANDLE_AT = 18,/* str: the path a handle was made for */
    PRIV_FSOPEN = 19,           /* new mount API (str: the filesystem type) */
    PRIV_FSMOUNT = 20,
    PRIV_MOVE_MOUNT = 21,       /* str: the target path; arg0 flags */
    PRIV_OPEN_TREE = 22,        /* str: the path; arg0 flags (OPEN_TREE_CLONE: a bind mount) */
    PRIV_PIVOT_ROOT = 23,       /* str: the new root */
    PRIV_CHROOT = 24,           /* str: the new root */
    PRIV_SETRESUID = 25,        /* arg0 ruid, arg1 euid (-1: unchanged) */
    PRIV_SETREUID = 26,         /* arg0 ruid, arg1 euid */
    PRIV_USERFAULTFD = 27,      /* arg0 flags */
    PRIV_SETGID = 28,           /* arg0 gid */
    PRIV_SETRESGID = 29,        /* arg0 rgid, arg1 egid */
    PRIV_SETREGID = 30,         /* arg0 rgid, arg1 egid */
    PRIV_CAPSET = 31,           /* arg0 effective, arg1 permitted capability sets (64 bits each) */
    PRIV_SCM_RIGHTS = 32,       /* fds received over a unix socket (arg0 the sender's pid, 0
                                 * unknown; arg1 how many) */
    PRIV_CHOWN = 33,            /* chown, lchown, fchownat, fchown (file.bpf.c): arg0 uid, arg1 gid
                                 * ((uid_t)-1: unchanged); str the path (fchown: the fd's, when
                                 * its open was seen in scope) */
    PRIV_COMPAT_SYSCALL = 34,   /* a 32-bit (compat) or x32 system call of interest, which no
                                 * syscalls:* tracepoint sees (priv.bpf.c): arg0 its 32-bit
                                 * number, arg1 COMPAT_* flags */
    PRIV_SECCOMP_ADDFD = 35,    /* SECCOMP_IOCTL_NOTIF_ADDFD: an fd installed in another process
                                 * (the one a seccomp notification came from): arg0 the fd given,
                                 * arg1 the target fd (4294967295: the lowest free); str "socket"
                                 * when it is a network socket */
    PRIV_SET_NAME = 36,         /* prctl(PR_SET_NAME): the task renamed itself (priv.bpf.c); str
                                 * the new name (16 bytes at most, as the kernel keeps it) */
};
#define COMPAT_KILLED 1     /* the kernel sent SIGKILL (kill policy KILL_COMPAT_SYSCALL) */
#define COMPAT_X32 2        /* an x32 ABI call (arg0 without the x32 bit) */

struct event_hdr {
    __u64 ts_ns;          /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
    __u64 cgroup_id;      /* leaf cgroup2 id of the task */
    __u64 scope_id;       /* ancestor cgroup id at the matching scope level (container id) */
    __u32 type;           /* enum event_type */
    __u32 pid;            /* tgid */
    __u32 tid;
    __u32 ppid;           /* from the fork map; 0 when the fork was not seen */
    __u32 uid;
    __u32 gid;
    char comm[COMM_LEN];
};                        /* 64 bytes */

struct exec_event {
    struct event_hdr hdr;
    __s32 ret;            /* 0, or -errno for a failed execve/execveat */
    __u32 argc;           /* argc as the program sees it (may exceed what was copied) */
    __u32 args_len;       /* bytes used in args: NUL-separated strings */
    __u32 flags;          /* EXEC_* */
    __s32 fd;             /* execveat dirfd, -100 (AT_FDCWD) for execve */
    __u32 envc;           /* dynamic-loader variables (LD_*=...) in args after argv's strings */
    char filename[PATH_LEN];
    char args[ARGS_BUF];  /* argv's strings, then envc environment strings, NUL-separated */
};

struct fork_event {
    struct event_hdr hdr; /* hdr.pid is the parent */
    __u64 clone_flags;
    __u32 child_pid;
    __u32 pad;
};

struct exit_event {
    struct event_hdr hdr;
    __s32 exit_code;      /* exit_group()/exit() status, -1 when the process died by signal */
    __u32 signal;         /* fatal signal seen delivered, 0 if none */
};

struct sock_info {
    __u16 family;         /* AF_INET 2, AF_INET6 10, AF_UNIX 1; 0 in sock_fds: known not a socket */
    __u16 port;           /* host byte order */
    __u32 flags;          /* SOCK_* */
    __u8 addr[16];        /* v4 in the first 4 bytes */
};                        /* 24 bytes */

struct connect_event {
    struct event_hdr hdr;
    __s32 ret;
    __s32 fd;
    struct sock_info sock;
    char unix_path[UNIX_PATH_LEN];
    __u32 flags;          /* CONNECT_* */
};

struct sock_event {      /* EVT_ACCEPT, EVT_BIND, EVT_LISTEN */
    struct event_hdr hdr;
    __s32 ret;            /* accept: the new fd; else 0; or -errno */
    __s32 fd;             /* the listening / bound socket */
    struct sock_info sock;/* accept: the peer (SOCK_ACCEPTED); bind, listen: local address */
    __u32 backlog;        /* listen */
    __u32 pad;
};

struct uring_event {      /* EVT_URING */
    struct event_hdr hdr;
    __u32 opcode;         /* IORING_OP_* */
    __u32 flags;          /* URING_* */
    __u64 user_data;
    __u64 sqe_flags;
};

struct mmap_event {       /* EVT_MMAP_WRITE */
    struct event_hdr hdr;
    __s32 fd;
    __u32 prot;
    __u32 flags;          /* MAP_* */
    __u32 pad;
    __u64 len;
    char path[PATH_LEN];  /* the file, when it was opened with write intent in scope */
};

/* One end of a pipe, fifo or pty. `id` is what links the ends, from our own maps only (no
 * struct file): a pipe's creation stamp (ns clock, low 6 bits the CPU: one CPU never ends two
 * pipe calls in 64 ns), a fifo's path hash (PATH_HASH_* over the path as resolved in the
 * kernel: a fifo opened under another name is not linked), a pty's master stamp (/dev/ptmx
 * open; TIOCGPTN tells its number, so /dev/pts/N opens find it). 0: not known. */
struct chan_info {
    __u64 id;
    __u32 kind;           /* CHAN_PIPE, CHAN_FIFO, CHAN_PTY, CHAN_SOCKPAIR; 0: none */
    __u32 end;            /* CHAN_READ ... CHAN_SLAVE */
};                        /* 16 bytes */

struct dup_event {
    struct event_hdr hdr;
    __s32 ret;
    __s32 oldfd;
    __s32 newfd;
    __u32 flags;          /* DUP_* */
    struct sock_info sock;/* valid when DUP_OLDFD_SOCKET */
    struct chan_info chan;/* what oldfd is when it is a pipe, fifo or pty end (DUP_FD_KINDS) */
};

struct chan_event {       /* EVT_CHAN */
    struct event_hdr hdr;
    __s32 ret;            /* 0 or the opened fd; -errno when the call failed */
    __s32 fd;             /* the new fd: pipe read end, opened fd, TIOCGPTPEER's slave; -1 */
    __s32 fd2;            /* pipe write end; TIOCGPTPEER's master; else -1 */
    __u32 op;             /* CHAN_OP_* */
    __u32 pty;            /* pty number when known, else 0xffffffff */
    __u32 pad;
    struct chan_info chan;/* of fd (the write end has the same id, end CHAN_WRITE) */
};

/* utime_event.how */
#define UTIME_SET_ATIME   (1u << 0)  /* atime set to a chosen value (not now, not omitted) */
#define UTIME_SET_MTIME   (1u << 1)  /* mtime set to a chosen value */
#define UTIME_BACKDATED   (1u << 2)  /* a chosen time lies more than UTIME_PAST_S in the past */
#define UTIME_PAST_S      3600

struct utime_event {      /* EVT_UTIME */
    struct event_hdr hdr;
    __s32 ret;
    __s32 fd;             /* the dirfd (AT_FDCWD -100), or futimens's fd when path is empty */
    __u32 flags;          /* utimensat flags (AT_SYMLINK_NOFOLLOW...) */
    __u32 how;            /* UTIME_* */
    __s64 atime;          /* seconds, when UTIME_SET_ATIME */
    __s64 mtime;          /* seconds, when UTIME_SET_MTIME */
    char path[PATH_LEN];  /* joined to its dirfd; futimens: the file's path when it was opened
                           * with write intent in scope, else empty */
};

struct net_send_event {  /* EVT_NET_SEND: sent by the kernel when the socket fd is closed */
    struct event_hdr hdr;
    __s32 fd;
    __u32 calls;
    __u64 bytes;          /* cumulative for this (process, fd) since the connect */
    __u64 first_ts;
    struct sock_info sock;
};

struct file_open_event {
    struct event_hdr hdr;
    __s32 ret;            /* fd, or -errno */
    __s32 dirfd;
    __u32 flags;          /* open(2) flags */
    __u32 mode;
    __u32 kind;           /* FILE_KIND_* */
    __u32 pad;
    char path[PATH_LEN];
};

struct path_event {       /* EVT_UNLINK, EVT_CHMOD */
    struct event_hdr hdr;
    __s32 ret;
    __s32 fd;             /* fchmod's fd / *at dirfd */
    __u32 mode;           /* chmod mode; unlinkat flags */
    __u32 pad;
    char path[PATH_LEN];
};

struct rename_event {
    struct event_hdr hdr;
    __s32 ret;
    __u32 flags;
    char oldpath[PATH_LEN];
    char newpath[PATH_LEN];
};

struct priv_event {
    struct event_hdr hdr;
    __s32 ret;
    __u32 op;             /* enum priv_op */
    __u64 arg0;
    __u64 arg1;
    char str[PATH_LEN];   /* mount source/target, module params, memfd name */
};

/* ---- in-kernel aggregation (read by user space, not sent through the ring buffers) ---- */

struct file_key {
    __u32 tgid;
    __u32 kind;           /* FILE_KIND_*, | 0x100 for failed opens */
    __u64 path_hash;      /* path_hash() below; the path itself is in the value */
};

struct file_agg {
    __u64 first_ts;
    __u64 last_ts;
    __u64 bytes;          /* bytes written through fds opened on this key */
    __u64 scope_id;
    __u64 cgroup_id;
    __u32 opens;
    __u32 writes;
    __u32 flags;          /* open flags of the first open */
    __u32 uid;
    char path[PATH_LEN];
};

/* The path hash of file_key: over the path zero-padded to a multiple of 8 bytes, read as
 * little-endian u64 words w: h = FNV offset basis; for each word: h = (h ^ w) * FNV prime.
 * coi_sentinel/probes/aggregates.py computes the same. A short key keeps the per-open and
 * per-write map lookups cheap (a 264-byte key cost ~0.2 us per open/write/close). */
#define PATH_HASH_INIT 0xcbf29ce484222325ULL
#define PATH_HASH_PRIME 0x100000001b3ULL

struct fd_key {
    __u32 tgid;
    __s32 fd;
};

struct net_agg {
    __u64 first_ts;
    __u64 last_ts;
    __u64 bytes;
    __u64 scope_id;
    __u64 cgroup_id;
    __u32 calls;
    __u32 uid;
    struct sock_info sock;
};

struct lpm_path_key {     /* sens_prefix / sens_suffix tries (suffixes are stored reversed) */
    __u32 prefixlen;      /* in bits */
    char data[PATH_LEN];
};

struct conn_key {          /* conn_aggs: repeats of one inet/inet6 connect by one process */
    __u32 tgid;
    __s32 ret;
    __u16 family;
    __u16 port;
    __u8 addr[16];
};                        /* 28 bytes */

struct conn_agg {
    __u64 first_ts;
    __u64 last_ts;
    __u64 scope_id;
    __u64 cgroup_id;
    __u32 count;          /* connects, the first (sent as EVT_CONNECT) included */
    __u32 uid;
};

/* ---- in-kernel kill policy, per scope (what the kernel can decide alone) ---- */
#define KILL_MEMFD_EXEC       (1u << 0)  /* SIGKILL a process that execs from a memfd */
#define KILL_BLOCKED_CONNECT  (1u << 1)  /* SIGKILL a process connecting to a blocked dest */
#define KILL_SHELL_SOCKET     (1u << 2)  /* SIGKILL a shell/interpreter with a net socket on 0/1 */
#define KILL_URING_CONNECT    (1u << 3)  /* SIGKILL an io_uring connect (destination unknown) */
#define KILL_UNLINKED_EXEC    (1u << 4)  /* SIGKILL an exec of an O_TMPFILE or unlinked file */
#define KILL_COMPAT_SYSCALL   (1u << 5)  /* SIGKILL a 32-bit system call of interest (priv.bpf.c) */

enum kill_reason {
    KILL_REASON_MEMFD_EXEC = 0,
    KILL_REASON_BLOCKED_CONNECT = 1,
    KILL_REASON_SHELL_SOCKET = 2,
    KILL_REASON_URING_CONNECT = 3,
    KILL_REASON_UNLINKED_EXEC = 4,
    KILL_REASON_COMPAT_SYSCALL = 5,
    KILL_REASON_MAX = 8,
};

/* ring_retries slots: reservations refused once and granted on the retry, per ring, and
 * security records the high-priority ring refused twice that the bulk ring took */
enum ring_retry {
    RETRY_HI = 0,
    RETRY_BULK = 1,
    RETRY_HI_VIA_BULK = 2,
    RETRY_KINDS = 3,
};

struct comm_key {         /* shell_comms: task names of shells and interpreters */
    char comm[COMM_LEN];
};

struct blocked_key {      /* blocked_nets LPM trie: scope id, then the address */
    __u32 prefixlen;      /* 64 (scope) + 8 (family) + address bits */
    __u8 scope[8];        /* scope id, big-endian, so it is a prefix */
    __u8 family;          /* AF_INET or AF_INET6 */
    __u8 addr[16];
    __u8 pad[3];
};

struct blocked_port_key {
    __u64 scope_id;
    __u16 port;
    __u16 pad[3];
};

/* ---- scope filter configuration (one element; user space writes it) ---- */
#define SCOPE_NONE 0      /* nothing (the zeroed map before user space writes it) */
#define SCOPE_LISTED 1    /* only tasks whose ancestor cgroup at a listed level is in `scopes` */
#define SCOPE_ALL 2       /* every process on the host (except the watcher) */

struct scope_cfg {
    __u32 mode;
    __u32 levels;         /* bit L set: look up the ancestor cgroup id at level L */
    __u32 self_tgid;      /* the watcher itself, never traced */
    __u32 host_level;     /* SCOPE_ALL: the level whose ancestor id is reported as scope_id */
};

#endif
