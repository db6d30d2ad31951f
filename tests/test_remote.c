/*  A dpool-broker process with two dpool-worker processes over TCP
    loopback; a client through the API. Then kill -9 of a worker in the
    middle of a job: every result still arrives exactly once, in order. */
#include "testutil.h"
#include "dpool.h"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char s_clients [64], s_workers [64];

static pid_t
s_start_worker (void)
{
    char *argv [] = { (char *) tu_bin ("dpool-worker"), "--connect", s_workers,
                      "-m", (char *) tu_lib ("libdpool_testtasks.so"), NULL };
    return tu_spawn (argv, NULL, NULL);
}

static void
s_test_square (dp_pool_t *pool, size_t n)
{
    tu_items_t items;
    tu_items_numbers (&items, n, 1);
    dp_results_t *res = NULL;
    long failed = dp_map (pool, "square", (dp_item_t *) items.items, n, NULL, &res);
    if (failed < 0)
        fprintf (stderr, "dp_map: %s\n", dp_strerror_last ());
    REQUIRE (failed == 0);
    size_t wrong = 0;
    for (size_t i = 0; i < n; i++) {
        char want [32];
        snprintf (want, sizeof want, "%lld", (long long) (i + 1) * (long long) (i + 1));
        size_t len;
        const char *got = (const char *) dp_results_data (res, i, &len);
        wrong += len != strlen (want) || memcmp (got, want, len) != 0;
    }
    CHECK (wrong == 0);
    dp_results_destroy (&res);
    tu_items_free (&items);
}

//  Streaming state for the kill test.
typedef struct {
    size_t n, next_in;
    char text [32];
    uint64_t expect;            //  next index the output must see
    size_t wrong, out_of_order;
    pid_t victim;
    size_t kill_at;
    bool killed;
} kill_state_t;

static const char *
s_item_text (size_t i, char *buf, size_t size)
{
    snprintf (buf, size, "%d", i % 50 == 0 ? 2 : 0);
    return buf;
}

static int
s_kill_input (void *arg, const void **data, size_t *len)
{
    kill_state_t *s = (kill_state_t *) arg;
    if (s->next_in == s->n)
        return 0;
    *data = s_item_text (s->next_in++, s->text, sizeof s->text);
    *len = strlen (s->text);
    return 1;
}

static int
s_kill_output (void *arg, uint64_t index, dp_status_t status, const void *data, size_t len)
{
    kill_state_t *s = (kill_state_t *) arg;
    char want [32];
    s_item_text (index, want, sizeof want);
    if (index != s->expect)
        s->out_of_order++;
    s->expect = index + 1;
    if (status != DP_OK || len != strlen (want) || memcmp (data, want, len))
        s->wrong++;
    if (index == s->kill_at && !s->killed) {
        kill (s->victim, SIGKILL);
        s->killed = true;
    }
    return 0;
}

int
main (void)
{
    snprintf (s_clients, sizeof s_clients, "tcp://127.0.0.1:%d", tu_free_port ());
    snprintf (s_workers, sizeof s_workers, "tcp://127.0.0.1:%d", tu_free_port ());
    char *bargv [] = { (char *) tu_bin ("dpool-broker"), "--clients", s_clients,
                       "--workers", s_workers, "-j", "none", "--task-wait", "10000", NULL };
    pid_t broker = tu_spawn (bargv, NULL, NULL);
    REQUIRE (broker > 0);
    pid_t workers [3] = { s_start_worker (), s_start_worker (), s_start_worker () };
    dp_pool_opts_t opts = { .endpoint = s_clients };
    dp_pool_t *pool = NULL;
    int64_t deadline = tu_now_ms () + 10000;
    while (!pool && tu_now_ms () < deadline)
        pool = dp_pool_open (&opts);    //  the broker may still be starting
    REQUIRE (pool);
    s_test_square (pool, 200000);

    kill_state_t state = { .n = 50000, .victim = workers [0], .kill_at = 20000 };
    long failed = dp_map_stream (pool, "sleep_ms", NULL, s_kill_input, s_kill_output, &state);
    CHECK (failed == 0);
    CHECK (state.killed);
    CHECK (state.expect == state.n);
    CHECK (state.wrong == 0);
    CHECK (state.out_of_order == 0);
    CHECK (tu_wait (workers [0], 1000) != -1);
    s_test_square (pool, 1000);     //  the pool goes on with the others

    dp_pool_close (&pool);
    kill (broker, SIGTERM);
    int status = tu_wait (broker, 5000);
    CHECK (status != -1 && WIFEXITED (status) && WEXITSTATUS (status) == 0);
    //  remote workers outlive their broker (they wait to reconnect)
    CHECK (tu_alive (workers [1]) && tu_alive (workers [2]));
    for (int i = 1; i < 3; i++) {
        kill (workers [i], SIGTERM);
        status = tu_wait (workers [i], 5000);
        CHECK (status != -1 && WIFEXITED (status) && WEXITSTATUS (status) == 0);
    }
    return tu_done ("test_remote");
}
