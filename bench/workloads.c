#define _GNU_SOURCE
/* workloads.c - the loops the probe benchmark times. Each prints its own loop time in ns.
 *   workloads exec N           fork + execv("/bin/true") + wait, N times
 *   workloads openwrite N PATH open(O_WRONLY|O_CREAT|O_TRUNC) + write 64 B + close, N times
 *   workloads connect N PORT   socket + connect to 127.0.0.1:PORT (closed) + close, N times
 *   workloads execpace N USEC  like exec, sleeping USEC between execs (latency probe)
 *   workloads openunlink N DIR open(DIR/f<i>, O_WRONLY|O_CREAT|O_TRUNC) + write 64 B + close
 *                              + unlink, N times: a new path each time, so nothing aggregates
 *   workloads pipes N          pipe2 + dup2 of the read end + ioctl(FIONREAD) + close of the
 *                              three fds, N times (the hooks of pipe.bpf.c and its dup/close)
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    long n = atol(argv[2]);
    long long t0 = now_ns();
    if (!strcmp(argv[1], "exec") || !strcmp(argv[1], "execpace")) {
        long pace = argc > 3 ? atol(argv[3]) : 0;
        for (long i = 0; i < n; i++) {
            pid_t p = fork();
            if (p == 0) {
                execl("/bin/true", "true", (char *)0);
                _exit(127);
            }
            int st;
            waitpid(p, &st, 0);
            if (pace)
                usleep(pace);
        }
    } else if (!strcmp(argv[1], "openwrite") && argc > 3) {
        char buf[64];
        memset(buf, 'x', sizeof(buf));
        for (long i = 0; i < n; i++) {
            int fd = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd < 0)
                return 1;
            if (write(fd, buf, sizeof(buf)) != sizeof(buf))
                return 1;
            close(fd);
        }
    } else if (!strcmp(argv[1], "openunlink") && argc > 3) {
        char buf[64], path[4096];
        memset(buf, 'x', sizeof(buf));
        for (long i = 0; i < n; i++) {
            snprintf(path, sizeof(path), "%s/f%ld", argv[3], i);
            int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd < 0)
                return 1;
            if (write(fd, buf, sizeof(buf)) != sizeof(buf))
                return 1;
            close(fd);
            unlink(path);
        }
    } else if (!strcmp(argv[1], "connect") && argc > 3) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[3]))};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        for (long i = 0; i < n; i++) {
            int s = socket(AF_INET, SOCK_STREAM, 0);
            connect(s, (struct sockaddr *)&sa, sizeof(sa));
            close(s);
        }
    } else if (!strcmp(argv[1], "pipes")) {
        for (long i = 0; i < n; i++) {
            int fds[2], avail = 0;
            if (pipe2(fds, O_CLOEXEC))
                return 1;
            if (dup2(fds[0], 10) != 10)
                return 1;
            ioctl(10, FIONREAD, &avail);
            close(10);
            close(fds[0]);
            close(fds[1]);
        }
    } else {
        return 2;
    }
    printf("%lld\n", now_ns() - t0);
    return 0;
}
