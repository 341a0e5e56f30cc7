/* The program the download scenarios fetch and run: prints a version line. */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0)
        puts("agent-tool 1.4.2");
    else
        puts("agent-tool: up to date");
    return 0;
}
