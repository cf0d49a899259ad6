/* The floor under the IDLE push figure: how fast this machine can write one
 * "* n EXISTS" line to each of K idle loopback TCP sessions, with no server
 * work at all. bench/imap.py compiles and runs it beside mailbag's idle phase
 * (the same IdleSwarm client, the same K), so the table shows how much of the
 * push latency is the kernel's and the client's, not the server's.
 *
 * It speaks just enough IMAP for IdleSwarm: a greeting, "a LOGIN" -> OK,
 * "b SELECT" -> EXISTS + OK, "c IDLE" -> continuation. Each SIGUSR1 writes the
 * next EXISTS line to every idling socket in tight loops of write(2), split
 * over THREADS threads (each takes every THREADS-th socket).
 * usage: idle_floor PORT THREADS; prints "ready" once listening.
 */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_SESSIONS 200000
static int idling[MAX_SESSIONS];
static int n_idling;
static volatile sig_atomic_t push_due;
static char line[64];
static int line_len, n_threads;

static void *write_share(void *arg) {
    for (int i = (int)(long)arg; i < n_idling; i += n_threads)
        if (write(idling[i], line, (size_t)line_len) != line_len) perror("idle_floor: write");
    return NULL;
}

static void on_usr1(int sig) {
    (void)sig;
    push_due = 1;
}

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    n_threads = atoi(argv[2]);
    if (n_threads < 1 || n_threads > 64) return 2;
    int exists = 10, one = 1;
    signal(SIGUSR1, on_usr1);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((unsigned short)atoi(argv[1])),
                               .sin_addr.s_addr = htonl(0x7f000001)};
    if (bind(ls, (struct sockaddr *)&addr, sizeof addr) || listen(ls, 4096)) {
        perror("idle_floor: bind/listen");
        return 1;
    }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    static struct epoll_event ready[1024];
    static char buf[4096];
    printf("ready\n");
    fflush(stdout);
    for (;;) {
        if (push_due) {
            push_due = 0;
            line_len = snprintf(line, sizeof line, "* %d EXISTS\r\n", ++exists);
            pthread_t threads[64];
            for (long t = 1; t < n_threads; t++) pthread_create(&threads[t], NULL, write_share, (void *)t);
            write_share((void *)0);
            for (int t = 1; t < n_threads; t++) pthread_join(threads[t], NULL);
        }
        int k = epoll_wait(ep, ready, 1024, 100);
        for (int i = 0; i < k; i++) {
            int fd = ready[i].data.fd;
            if (fd == ls) {
                int c;
                while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event e = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &e);
                    if (write(c, "* OK floor\r\n", 12) != 12) close(c);
                }
                continue;
            }
            ssize_t n = read(fd, buf, sizeof buf - 1);
            if (n <= 0) {
                close(fd);
                continue;
            }
            buf[n] = 0;
            /* IdleSwarm sends each command only after the previous answer. */
            if (!strncmp(buf, "a LOGIN", 7)) {
                if (write(fd, "a OK\r\n", 6) != 6) close(fd);
            } else if (!strncmp(buf, "b SELECT", 8)) {
                char r[64];
                int m = snprintf(r, sizeof r, "* %d EXISTS\r\nb OK\r\n", exists);
                if (write(fd, r, (size_t)m) != m) close(fd);
            } else if (!strncmp(buf, "c IDLE", 6) && n_idling < MAX_SESSIONS) {
                if (write(fd, "+ idling\r\n", 10) == 10) idling[n_idling++] = fd;
            }
        }
    }
}
