/* Bounded fork trees: a binary tree of processes DEPTH levels deep (2^(DEPTH+1) - 2 forks).
 *   spawn DEPTH        each process forks its two children one after the other and waits for
 *                      each, so at most DEPTH + 1 processes exist at once: the fork rate of a
 *                      bomb with the live count of a build (no fork bomb)
 *   spawn DEPTH wide   each process forks both children, then waits for them: nearly the whole
 *                      tree is alive at once (2^DEPTH processes and more), a fork bomb that
 *                      stops at DEPTH
 * Usage: spawn DEPTH [wide]   (DEPTH 1..14, wide at most 11) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static void grow_wide(int depth)
{
    if (depth == 0)
        return;
    for (int i = 0; i < 2; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            grow_wide(depth - 1);
            _exit(0);
        }
    }
    while (wait(NULL) > 0)
        ;
}

int main(int argc, char **argv)
{
    int depth = argc > 1 ? atoi(argv[1]) : 0;
    int wide = argc > 2 && strcmp(argv[2], "wide") == 0;
    if (depth < 1 || depth > 14 || (wide && depth > 11) || (argc > 2 && !wide)) {
        fprintf(stderr, "usage: %s DEPTH [wide]   (DEPTH 1..14; wide: 1..11)\n", argv[0]);
        return 2;
    }
    if (wide)
        grow_wide(depth);
    else
        grow(depth);
    return 0;
}
