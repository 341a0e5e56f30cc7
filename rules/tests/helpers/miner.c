/* A miner lookalike: reads the pool from "-o stratum+tcp://HOST:PORT" or from a config file
 * given with "-c FILE" (the first "stratum+tcp://" in it), connects, sends a stratum login
 * line as xmrig does, reads one reply line and exits. It mines nothing.
 * Usage: miner -o stratum+tcp://HOST:PORT [-u WALLET] [...] | miner -c CONFIG */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char SCHEME[] = "stratum+tcp://";

static int parse_pool(const char *text, char *host, size_t hostlen, int *port)
{
    const char *p = strstr(text, SCHEME);
    if (p == NULL)
        return -1;
    p += sizeof SCHEME - 1;
    const char *colon = strchr(p, ':');
    if (colon == NULL || (size_t)(colon - p) >= hostlen)
        return -1;
    memcpy(host, p, colon - p);
    host[colon - p] = '\0';
    *port = atoi(colon + 1);
    return 0;
}

int main(int argc, char **argv)
{
    char host[64] = "", buf[4096];
    int port = 0;
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "-o") == 0) {
            parse_pool(argv[i + 1], host, sizeof host, &port);
        } else if (strcmp(argv[i], "-c") == 0) {
            FILE *f = fopen(argv[i + 1], "r");
            size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
            if (f)
                fclose(f);
            buf[n] = '\0';
            parse_pool(buf, host, sizeof host, &port);
        }
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (port <= 0 || inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "no pool (-o stratum+tcp://HOST:PORT or -c CONFIG)\n");
        return 2;
    }
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof sa) < 0) {
        perror("connect");
        return 1;
    }
    const char *login = "{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":"
                        "{\"login\":\"wallet\",\"pass\":\"x\",\"agent\":\"XMRig/6.21.0\"}}\n";
    if (write(s, login, strlen(login)) < 0)
        return 1;
    ssize_t n = read(s, buf, sizeof buf - 1);
    close(s);
    return n > 0 ? 0 : 1;
}
