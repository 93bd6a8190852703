/*
 * Reference echo server for bench/models.sh: the practical floor. One thread, one
 * level-triggered epoll loop, non-blocking sockets, one read and one write per wake-up,
 * one 64 KiB buffer shared by every connection. A write the socket cannot take whole
 * parks the rest in a per-connection buffer and waits for EPOLLOUT (reading stops
 * meanwhile), so no byte is ever lost.
 *
 * Build: gcc -O2 -o ref-epoll bench/ref-epoll.c      Run: ref-epoll [PORT]
 * Prints "listening on tcp://127.0.0.1:PORT" to stderr once ready.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF (64 * 1024)
#define MAX_EVENTS 1024

struct pending { char *data; size_t len, off; };

static struct pending *pend; /* indexed by fd; data == NULL when nothing is parked */
static int nfd;

static void die(const char *what) { perror(what); exit(1); }

static void drop(int ep, int fd) {
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    if (fd < nfd) { free(pend[fd].data); pend[fd].data = NULL; }
}

static void watch(int ep, int fd, unsigned events, int op) {
    struct epoll_event ev = { .events = events, .data.fd = fd };
    if (epoll_ctl(ep, op, fd, &ev) < 0) die("epoll_ctl");
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 0;
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (ls < 0) die("socket");
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
    if (listen(ls, 4096) < 0) die("listen");
    socklen_t alen = sizeof a;
    getsockname(ls, (struct sockaddr *)&a, &alen);

    nfd = 1 << 20;
    pend = calloc(nfd, sizeof *pend);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!pend || ep < 0) die("setup");
    watch(ep, ls, EPOLLIN, EPOLL_CTL_ADD);
    fprintf(stderr, "listening on tcp://127.0.0.1:%d\n", ntohs(a.sin_port));

    static char buf[BUF];
    struct epoll_event evs[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(ep, evs, MAX_EVENTS, -1);
        if (n < 0) { if (errno == EINTR) continue; die("epoll_wait"); }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == ls) {
                int c;
                while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    if (c >= nfd) { close(c); continue; }
                    watch(ep, c, EPOLLIN, EPOLL_CTL_ADD);
                }
                continue;
            }
            struct pending *p = &pend[fd];
            if (p->data) { /* writable again: flush what was parked */
                ssize_t w = write(fd, p->data + p->off, p->len - p->off);
                if (w < 0 && errno != EAGAIN) { drop(ep, fd); continue; }
                if (w > 0) p->off += w;
                if (p->off == p->len) {
                    free(p->data); p->data = NULL;
                    watch(ep, fd, EPOLLIN, EPOLL_CTL_MOD);
                }
                continue;
            }
            ssize_t r = read(fd, buf, BUF);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) { drop(ep, fd); continue; }
            if (r < 0) continue;
            ssize_t w = write(fd, buf, r);
            if (w < 0 && errno != EAGAIN) { drop(ep, fd); continue; }
            if (w < 0) w = 0;
            if (w < r) {
                p->len = r - w; p->off = 0;
                p->data = malloc(p->len);
                if (!p->data) die("malloc");
                memcpy(p->data, buf + w, p->len);
                watch(ep, fd, EPOLLOUT, EPOLL_CTL_MOD);
            }
        }
    }
}
