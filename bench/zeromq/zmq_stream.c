/*
 * zmq_stream: ZeroMQ's one-way stream, measured as `msgr bench --mode stream` measures msgr's, so that the two can
 * be run in turns on one machine (bench/vs-zeromq.sh).
 *
 * Both ends live in one process, as in `msgr bench`: a PUSH socket connected over TCP loopback to a PULL socket, each
 * with a context (and so an I/O thread) of its own, as two processes would have. ZeroMQ's defaults otherwise (SNDHWM
 * and RCVHWM 1,000 messages, Nagle off). As in libzmq's own perf/local_thr, the clock starts when the first message
 * arrives and stops at the last: the sender sends COUNT + 1 messages and the rate is COUNT over that time, so the
 * connection's set-up and teardown are outside it (as msgr bench keeps handshakes outside). Like perf/remote_thr, each
 * message is `zmq_msg_init_size` + `zmq_msg_send` (filled with a byte pattern), and the receiver checks its size.
 *
 * usage: zmq_stream SIZE COUNT   -> prints one line: "size=64 count=3000000 seconds=1.203 rate=2493765"
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

struct job {
    void *ctx;
    const char *endpoint;
    size_t size;
    long count;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "zmq_stream: %s: %s\n", what, zmq_strerror(zmq_errno()));
    exit(1);
}

static void *sender(void *arg)
{
    struct job *job = arg;
    void *push = zmq_socket(job->ctx, ZMQ_PUSH);
    if (!push || zmq_connect(push, job->endpoint) != 0)
        die("connect");
    for (long i = 0; i <= job->count; i++) {
        zmq_msg_t msg;
        if (zmq_msg_init_size(&msg, job->size) != 0)
            die("zmq_msg_init_size");
        memset(zmq_msg_data(&msg), (int)(i & 0xff), job->size);
        if (zmq_msg_send(&msg, push, 0) < 0)
            die("zmq_msg_send");
    }
    int linger = -1;
    zmq_setsockopt(push, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(push);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: zmq_stream SIZE COUNT\n");
        return 2;
    }
    struct job job = {.size = (size_t)strtoul(argv[1], NULL, 10), .count = strtol(argv[2], NULL, 10)};
    if (job.size == 0 || job.count <= 0) {
        fprintf(stderr, "zmq_stream: SIZE and COUNT must be positive\n");
        return 2;
    }
    void *rx_ctx = zmq_ctx_new();
    job.ctx = zmq_ctx_new();
    void *pull = zmq_socket(rx_ctx, ZMQ_PULL);
    if (!pull || zmq_bind(pull, "tcp://127.0.0.1:*") != 0)
        die("bind");
    char endpoint[256];
    size_t len = sizeof endpoint;
    if (zmq_getsockopt(pull, ZMQ_LAST_ENDPOINT, endpoint, &len) != 0)
        die("ZMQ_LAST_ENDPOINT");
    job.endpoint = endpoint;

    pthread_t thread;
    if (pthread_create(&thread, NULL, sender, &job) != 0) {
        fprintf(stderr, "zmq_stream: pthread_create failed\n");
        return 1;
    }
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    double start_time = 0;
    for (long i = 0; i <= job.count; i++) {
        if (zmq_msg_recv(&msg, pull, 0) < 0)
            die("zmq_msg_recv");
        if (zmq_msg_size(&msg) != job.size) {
            fprintf(stderr, "zmq_stream: message %ld has %zu bytes, not %zu\n", i, zmq_msg_size(&msg), job.size);
            return 1;
        }
        if (i == 0)
            start_time = now();
    }
    double seconds = now() - start_time;
    zmq_msg_close(&msg);
    pthread_join(thread, NULL);
    zmq_close(pull);
    zmq_ctx_term(job.ctx);
    zmq_ctx_term(rx_ctx);
    printf("size=%zu count=%ld seconds=%.3f rate=%.0f\n", job.size, job.count, seconds, (double)job.count / seconds);
    return 0;
}
