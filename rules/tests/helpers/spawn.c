/* A bounded fork bomb: a binary tree of processes DEPTH levels deep (2^(DEPTH+1) - 2 forks).
 * Each process forks its two children one after the other and waits for each, so at most
 * DEPTH + 1 processes of the tree exist at once: the fork rate of a bomb without its harm.
 * Usage: spawn DEPTH   (1..14) */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void grow(int depth)
{
    if (depth == 0)
        return;
    for (int i = 0; i < 2; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            grow(depth - 1);
            _exit(0);
        }
        if (pid > 0)
            waitpid(pid, NULL, 0);
    }
}

int main(int argc, char **argv)
{
    int depth = argc > 1 ? atoi(argv[1]) : 0;
    if (depth < 1 || depth > 14) {
        fprintf(stderr, "usage: %s DEPTH (1..14)\n", argv[0]);
        return 2;
    }
    grow(depth);
    return 0;
}
