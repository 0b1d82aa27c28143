/* The delay server of benchmarks/delay_server.py in C, for the latency regime of run.py.

   delay_server PORT DELAY PROCESSES: PROCESSES processes listen on 127.0.0.1:PORT
   (SO_REUSEPORT: the kernel spreads connections over them). Each is one epoll loop that
   accepts every connection waiting, reads the request head, answers DELAY seconds after the
   blank line that ends it with a small HTTP/1.0 response, and closes. The delay is the same for
   every connection, so the answers fall due in the order the heads arrived: a FIFO of
   deadlines, no timer per connection. Prints "ready" once every process listens; ends on
   SIGTERM. With DELAY_TRACE=PATH each process appends, every 20 ms, its open connections, how
   many it answered since the last line and how long they lived on average, to PATH.PID (the
   Python server's format).

   Why C: on a 2-core machine every microsecond the server spends is taken from the client being
   measured. The Python server (uvloop) spends ~75 us of CPU a connection; this one ~50, nearly
   all of it the kernel's (accept, the loopback TCP exchange, close), which no server avoids. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char RESPONSE[] =
    "HTTP/1.1 200 OK\r\nServer: delay\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
    "Connection: close\r\n\r\nok\n";

enum { MAX_FDS = 1 << 20, BACKLOG = 65535, EVENTS = 1024 };

struct conn {
    unsigned gen;     /* bumped at every close: a queued answer for an older fd is stale */
    unsigned char state; /* 0 closed, 1 reading the head, 2 answer queued */
    char tail[4];     /* the last bytes seen, to find the blank line across reads */
    double opened;
};

struct due {
    int fd;
    unsigned gen;
    double at;
};

static struct conn *conns;
static struct due *queue;
static size_t q_head, q_tail, q_cap;
static int epfd;
static long open_now, answered;
static double lived;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void drop(int fd) {
    conns[fd].state = 0;
    conns[fd].gen++;
    open_now--;
    close(fd); /* also leaves the epoll set */
}

static void push(int fd, double at) {
    if (q_tail - q_head == q_cap) { /* grow the ring, keeping its order */
        size_t cap = q_cap ? q_cap * 2 : 4096;
        struct due *bigger = malloc(cap * sizeof *bigger);
        for (size_t i = 0; i < q_tail - q_head; i++) bigger[i] = queue[(q_head + i) % q_cap];
        q_tail -= q_head;
        q_head = 0;
        free(queue);
        queue = bigger;
        q_cap = cap;
    }
    queue[q_tail % q_cap] = (struct due){fd, conns[fd].gen, at};
    q_tail++;
}

static int head_ended(struct conn *c, const char *data, ssize_t n) {
    char seen[4 + 4096];
    memcpy(seen, c->tail, 4);
    memcpy(seen + 4, data, (size_t)n);
    size_t len = 4 + (size_t)n;
    memcpy(c->tail, seen + len - 4, 4);
    return memmem(seen, len, "\r\n\r\n", 4) != NULL || memmem(seen, len, "\n\n", 2) != NULL;
}

static void readable(int fd, double delay) {
    char buf[4096];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0) {
            if (conns[fd].state == 1 && head_ended(&conns[fd], buf, n)) {
                conns[fd].state = 2;
                push(fd, now() + delay);
            }
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        drop(fd); /* the client went away, or reset */
        return;
    }
}

static void accept_all(int listener) {
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return; /* EAGAIN: none waiting (or EMFILE: try again at the next event) */
        if (fd >= MAX_FDS) {
            close(fd);
            continue;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
        conns[fd].state = 1;
        memset(conns[fd].tail, 0, 4);
        conns[fd].opened = now();
        open_now++;
    }
}

static void answer_due(double t) {
    while (q_head != q_tail && queue[q_head % q_cap].at <= t) {
        struct due d = queue[q_head % q_cap];
        q_head++;
        if (conns[d.fd].gen != d.gen || conns[d.fd].state != 2) continue;
        /* A small response into an empty socket buffer: written whole, or the client is gone. */
        ssize_t ignored = write(d.fd, RESPONSE, sizeof RESPONSE - 1);
        (void)ignored;
        lived += t - conns[d.fd].opened;
        answered++;
        drop(d.fd);
    }
}

static void serve(int listener, double delay, const char *trace) {
    conns = calloc(MAX_FDS, sizeof *conns);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = listener};
    epoll_ctl(epfd, EPOLL_CTL_ADD, listener, &ev);
    FILE *out = NULL;
    if (trace != NULL) {
        char path[4096];
        snprintf(path, sizeof path, "%s.%d", trace, (int)getpid());
        out = fopen(path, "a");
    }
    double next_trace = now();
    struct epoll_event events[EVENTS];
    for (;;) {
        double t = now();
        if (out != NULL && t >= next_trace) {
            fprintf(out, "%.3f %ld %ld %.3f\n", t, open_now, answered, answered ? lived / answered : 0.0);
            fflush(out);
            answered = 0;
            lived = 0;
            next_trace = t + 0.02;
        }
        answer_due(t);
        int timeout = -1;
        if (q_head != q_tail) timeout = (int)((queue[q_head % q_cap].at - t) * 1000) + 1;
        if (out != NULL && (timeout < 0 || timeout > (int)((next_trace - t) * 1000) + 1))
            timeout = (int)((next_trace - t) * 1000) + 1;
        int n = epoll_wait(epfd, events, EVENTS, timeout);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == listener)
                accept_all(listener);
            else if (conns[fd].state != 0)
                readable(fd, delay);
        }
    }
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: delay_server PORT DELAY PROCESSES\n");
        return 2;
    }
    int port = atoi(argv[1]), processes = atoi(argv[3]);
    double delay = atof(argv[2]);
    const char *trace = getenv("DELAY_TRACE");
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
    signal(SIGPIPE, SIG_IGN);
    int listeners[256];
    if (processes < 1 || processes > 256) return 2;
    for (int i = 0; i < processes; i++) { /* all bound before any accepts */
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, BACKLOG) != 0) {
            perror("delay_server: listen");
            return 1;
        }
        listeners[i] = fd;
    }
    pid_t children[256];
    for (int i = 0; i < processes; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            signal(SIGTERM, SIG_DFL);
            serve(listeners[i], delay, trace);
            _exit(0);
        }
        children[i] = pid;
        close(listeners[i]);
    }
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigprocmask(SIG_BLOCK, &stop, NULL);
    printf("ready\n");
    fflush(stdout);
    int sig;
    sigwait(&stop, &sig);
    for (int i = 0; i < processes; i++) kill(children[i], SIGTERM);
    for (int i = 0; i < processes; i++) waitpid(children[i], NULL, 0);
    return 0;
}
