/*  raw_zmq - the physical limit: a minimal raw-libzmq round trip
    client DEALER -> ROUTER [broker thread] ROUTER -> worker DEALER and back.

    raw_zmq [-W WORKERS] [-n N] [-w WINDOW] [-r REPEATS] [-f inproc|ipc] pipe|lat

    The same shape as dpool's embedded pool, with nothing else in it: the
    broker is a thread of the client process, forwarding frames (zmq_msg
    moves, no copies, no parsing) round-robin to WORKERS worker processes
    over ipc://; the client reaches the broker over inproc:// (as dpool's
    embedded pool does) or, with -f ipc, over ipc:// (as a client of a
    separate broker would). A worker does the work of dpool's `square`
    (parse a decimal number, square it, format it) and answers.

      pipe  pipelined round trips: WINDOW messages outstanding; prints the
            median over REPEATS runs of N messages, in messages/s
      lat   one message at a time: prints "P50_US P99_US", the medians over
            REPEATS runs of N round trips each (after N/10 warm-up ones)

    One message is one item: nothing is batched. Defaults: -W 2 -n 100000
    -w 1000 -r 5 -f inproc. Workers are forked before any ZeroMQ context
    exists and die with the parent (PR_SET_PDEATHSIG). */

#include <zmq.h>

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "bench_util.h"

#define MAX_WORKERS 256


static void
s_die (const char *what)
{
    fprintf (stderr, "raw_zmq: %s: %s\n", what, zmq_strerror (errno));
    exit (1);
}

//  Same work as testtasks' `square`: parse, square exactly, format.
static size_t
s_square (const char *in, size_t len, char *out)
{
    long long x = 0;
    int neg = 0;
    size_t i = 0;
    if (i < len && in [i] == '-') { neg = 1; i++; }
    for (; i < len && in [i] >= '0' && in [i] <= '9'; i++)
        x = x * 10 + (in [i] - '0');
    if (neg) x = -x;
    unsigned __int128 sq = (unsigned __int128) ((__int128) x * x);
    char digits [48];
    char *p = digits + sizeof digits;
    do {
        *--p = (char) ('0' + (int) (sq % 10));
        sq /= 10;
    } while (sq);
    size_t n = (size_t) (digits + sizeof digits - p);
    memcpy (out, p, n);
    return n;
}

//  --------------------------------------------------------------------------
//  Worker process: DEALER; sends "R" once, then answers [cid, item] with
//  [cid, result]; exits on an empty frame.

static void
s_worker (const char *backend)
{
    prctl (PR_SET_PDEATHSIG, SIGKILL);
    void *ctx = zmq_ctx_new ();
    void *sock = zmq_socket (ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt (sock, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt (sock, ZMQ_RCVHWM, &zero, sizeof zero);
    zmq_setsockopt (sock, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_connect (sock, backend))
        s_die ("worker connect");
    zmq_send (sock, "R", 1, 0);
    while (1) {
        zmq_msg_t cid, item;
        zmq_msg_init (&cid);
        if (zmq_msg_recv (&cid, sock, 0) < 0)
            break;
        if (zmq_msg_size (&cid) == 0)
            break;                      //  stop
        zmq_msg_init (&item);
        zmq_msg_recv (&item, sock, 0);
        char out [48];
        size_t n = s_square ((const char *) zmq_msg_data (&item), zmq_msg_size (&item), out);
        zmq_msg_close (&item);
        zmq_msg_send (&cid, sock, ZMQ_SNDMORE);
        zmq_send (sock, out, n, 0);
    }
    zmq_close (sock);
    zmq_ctx_term (ctx);
    _exit (0);
}

//  --------------------------------------------------------------------------
//  Broker thread: ROUTER frontend, ROUTER backend, round-robin forwarding.

typedef struct {
    void *ctx;
    const char *frontend, *backend;
    int nworkers;
    atomic_int ready;       //  workers registered
    atomic_int stop;
    atomic_int bound;
} broker_t;

static void *
s_broker (void *arg)
{
    broker_t *b = (broker_t *) arg;
    void *front = zmq_socket (b->ctx, ZMQ_ROUTER);
    void *back = zmq_socket (b->ctx, ZMQ_ROUTER);
    int zero = 0;
    zmq_setsockopt (front, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt (front, ZMQ_RCVHWM, &zero, sizeof zero);
    zmq_setsockopt (back, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt (back, ZMQ_RCVHWM, &zero, sizeof zero);
    zmq_setsockopt (front, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt (back, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_bind (front, b->frontend) || zmq_bind (back, b->backend))
        s_die ("broker bind");
    atomic_store (&b->bound, 1);
    zmq_msg_t wid [MAX_WORKERS];
    int nw = 0, next = 0;
    zmq_pollitem_t items [2] = { { front, 0, ZMQ_POLLIN, 0 }, { back, 0, ZMQ_POLLIN, 0 } };
    while (!atomic_load (&b->stop)) {
        if (zmq_poll (items, nw ? 2 : 1, 100) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (nw < b->nworkers)
            items [1].revents = ZMQ_POLLIN;
        //  Drain the backend first: answers free the pipeline
        while (1) {
            zmq_msg_t id, m1;
            zmq_msg_init (&id);
            if (zmq_msg_recv (&id, back, nw < b->nworkers ? 0 : ZMQ_DONTWAIT) < 0) {
                zmq_msg_close (&id);
                break;
            }
            zmq_msg_init (&m1);
            zmq_msg_recv (&m1, back, 0);
            if (!zmq_msg_more (&m1)) {          //  "R": a worker registers
                zmq_msg_close (&m1);
                zmq_msg_init (&wid [nw]);
                zmq_msg_move (&wid [nw], &id);
                nw++;
                atomic_store (&b->ready, nw);
                if (nw < b->nworkers)
                    continue;
                break;
            }
            zmq_msg_close (&id);
            //  [cid, result] -> frontend [cid, result]
            zmq_msg_send (&m1, front, ZMQ_SNDMORE);
            zmq_msg_t m2;
            zmq_msg_init (&m2);
            zmq_msg_recv (&m2, back, 0);
            zmq_msg_send (&m2, front, 0);
        }
        //  Frontend: [cid, item] -> backend [wid, cid, item]
        while (nw) {
            zmq_msg_t cid, item, w;
            zmq_msg_init (&cid);
            if (zmq_msg_recv (&cid, front, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close (&cid);
                break;
            }
            zmq_msg_init (&item);
            zmq_msg_recv (&item, front, 0);
            zmq_msg_init (&w);
            zmq_msg_copy (&w, &wid [next]);
            next = (next + 1) % nw;
            zmq_msg_send (&w, back, ZMQ_SNDMORE);
            zmq_msg_send (&cid, back, ZMQ_SNDMORE);
            zmq_msg_send (&item, back, 0);
        }
    }
    for (int i = 0; i < nw; i++) {
        zmq_msg_send (&wid [i], back, ZMQ_SNDMORE);
        zmq_send (back, "", 0, 0);
    }
    usleep (50000);
    zmq_close (front);
    zmq_close (back);
    return NULL;
}

//  --------------------------------------------------------------------------

static void
s_usage (void)
{
    fprintf (stderr, "usage: raw_zmq [-W WORKERS] [-n N] [-w WINDOW] [-r REPEATS] "
                     "[-f inproc|ipc] pipe|lat\n");
}

int
main (int argc, char *argv [])
{
    int nworkers = 2, repeats = 5;
    long n = 100000, window = 1000;
    const char *transport = "inproc";
    int c;
    while ((c = getopt (argc, argv, "W:n:w:r:f:h")) != -1) {
        switch (c) {
            case 'W': nworkers = atoi (optarg); break;
            case 'n': n = atol (optarg); break;
            case 'w': window = atol (optarg); break;
            case 'r': repeats = atoi (optarg); break;
            case 'f': transport = optarg; break;
            default: s_usage (); return c == 'h' ? 0 : 64;
        }
    }
    if (argc - optind != 1 || nworkers < 1 || nworkers > MAX_WORKERS || n < 1 || window < 1
    ||  repeats < 1 || repeats > 100
    ||  (strcmp (argv [optind], "pipe") && strcmp (argv [optind], "lat"))
    ||  (strcmp (transport, "inproc") && strcmp (transport, "ipc"))) {
        s_usage ();
        return 64;
    }
    int pipelined = strcmp (argv [optind], "pipe") == 0;
    char backend [128], frontend [128];
    snprintf (backend, sizeof backend, "ipc:///tmp/raw_zmq-%d-back.ipc", (int) getpid ());
    if (strcmp (transport, "ipc") == 0)
        snprintf (frontend, sizeof frontend, "ipc:///tmp/raw_zmq-%d-front.ipc", (int) getpid ());
    else
        snprintf (frontend, sizeof frontend, "inproc://raw_zmq-front");

    //  Workers first, while this process has no threads and no context
    pid_t pids [MAX_WORKERS];
    for (int i = 0; i < nworkers; i++) {
        pids [i] = fork ();
        if (pids [i] == 0)
            s_worker (backend);
        if (pids [i] < 0)
            s_die ("fork");
    }
    void *ctx = zmq_ctx_new ();
    broker_t b = { ctx, frontend, backend, nworkers, 0, 0, 0 };
    pthread_t thread;
    pthread_create (&thread, NULL, s_broker, &b);
    while (!atomic_load (&b.bound))
        usleep (1000);
    void *sock = zmq_socket (ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt (sock, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt (sock, ZMQ_RCVHWM, &zero, sizeof zero);
    zmq_setsockopt (sock, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_connect (sock, frontend))
        s_die ("client connect");
    double t0 = s_now ();
    while (atomic_load (&b.ready) < nworkers) {
        if (s_now () - t0 > 10) {
            fprintf (stderr, "raw_zmq: workers did not register\n");
            return 1;
        }
        usleep (1000);
    }

    //  Items "1".."n"
    char (*items) [24] = malloc ((size_t) n * sizeof *items);
    int *lens = malloc ((size_t) n * sizeof (int));
    for (long i = 0; i < n; i++)
        lens [i] = sprintf (items [i], "%ld", i + 1);

    double values [100], p99s [100];
    double *lat = malloc ((size_t) n * sizeof (double));
    char buf [64];
    for (int r = 0; r < repeats; r++) {
        if (pipelined) {
            long sent = 0, got = 0;
            double start = s_now ();
            while (sent < n && sent < window) {
                zmq_send (sock, items [sent], (size_t) lens [sent], 0);
                sent++;
            }
            while (got < n) {
                if (zmq_recv (sock, buf, sizeof buf, 0) < 0)
                    s_die ("recv");
                got++;
                if (sent < n) {
                    zmq_send (sock, items [sent], (size_t) lens [sent], 0);
                    sent++;
                }
            }
            double elapsed = s_now () - start;
            values [r] = n / elapsed;
            fprintf (stderr, "  raw pipe run %d: %.3f s, %.0f msgs/s (window %ld)\n",
                     r + 1, elapsed, values [r], window);
        }
        else {
            long warm = n / 10 + 1;
            for (long i = -warm; i < n; i++) {
                long k = i < 0 ? 0 : i;
                double start = s_now ();
                zmq_send (sock, items [k], (size_t) lens [k], 0);
                int len = zmq_recv (sock, buf, sizeof buf - 1, 0);
                if (len < 0)
                    s_die ("recv");
                if (i >= 0)
                    lat [i] = (s_now () - start) * 1e6;
            }
            qsort (lat, (size_t) n, sizeof (double), s_cmp);
            values [r] = lat [(size_t) (n * 0.50)];
            p99s [r] = lat [(size_t) (n * 0.99) < (size_t) n ? (size_t) (n * 0.99) : (size_t) n - 1];
            fprintf (stderr, "  raw lat run %d: p50 %.1f us, p99 %.1f us\n", r + 1, values [r], p99s [r]);
        }
    }
    qsort (values, (size_t) repeats, sizeof (double), s_cmp);
    if (pipelined)
        printf ("%.0f\n", values [repeats / 2]);
    else {
        qsort (p99s, (size_t) repeats, sizeof (double), s_cmp);
        printf ("%.1f %.1f\n", values [repeats / 2], p99s [repeats / 2]);
    }
    atomic_store (&b.stop, 1);
    pthread_join (thread, NULL);
    zmq_close (sock);
    zmq_ctx_term (ctx);
    for (int i = 0; i < nworkers; i++)
        waitpid (pids [i], NULL, 0);
    unlink (backend + 6);
    if (strcmp (transport, "ipc") == 0)
        unlink (frontend + 6);
    free (items);
    free (lens);
    free (lat);
    return 0;
}
