#include "testpeer.h"

void *
tu_dealer_new (void *ctx)
{
    void *sock = zmq_socket (ctx, ZMQ_DEALER);
    REQUIRE (sock);
    int linger = 0;
    zmq_setsockopt (sock, ZMQ_LINGER, &linger, sizeof linger);
    return sock;
}

void *
tu_dealer (void *ctx, const char *endpoint)
{
    void *sock = tu_dealer_new (ctx);
    REQUIRE (zmq_connect (sock, endpoint) == 0);
    return sock;
}

int
tu_send_try (void *sock, dp_msg_t *msg)
{
    int rc = dp_msg_send (msg, sock, NULL);
    dp_msg_reset (msg);
    return rc;
}

void
tu_send (void *sock, dp_msg_t *msg)
{
    REQUIRE (tu_send_try (sock, msg) == 0);
}

int
tu_recv (void *sock, dp_msg_t *msg, int ms)
{
    int64_t deadline = tu_now_ms () + ms;
    while (tu_now_ms () < deadline) {
        zmq_pollitem_t item = { sock, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll (&item, 1, 50) <= 0)
            continue;
        dp_msg_reset (msg);
        if (dp_msg_recv (msg, sock, NULL, 0, NULL, 0) == 0 && msg->cmd != DP_CMD_HEARTBEAT)
            return msg->cmd;
    }
    return -1;
}

void
tu_heartbeat (void *sock)
{
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_HEARTBEAT);
    tu_send (sock, &msg);
}

int
tu_hello (void *sock, dp_msg_t *welcome)
{
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_HELLO);
    msg.hb = 1000;
    tu_send (sock, &msg);
    dp_msg_init (&msg, 0);
    int cmd = tu_recv (sock, &msg, 5000);
    if (welcome)
        *welcome = msg;
    else
        dp_msg_reset (&msg);
    return cmd;
}

int
tu_ready (void *sock, const char *task, uint32_t credit)
{
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_READY);
    char *tasks [] = { (char *) task };
    msg.tasks = task ? tasks : NULL;
    msg.ntasks = task ? 1 : 0;
    msg.credit = credit;
    msg.hb = 1000;
    REQUIRE (dp_msg_send (&msg, sock, NULL) == 0);
    msg.tasks = NULL;               //  not ours to free
    msg.ntasks = 0;
    dp_msg_reset (&msg);
    dp_msg_init (&msg, 0);
    int cmd = tu_recv (sock, &msg, 5000);
    dp_msg_reset (&msg);
    return cmd;
}

void
tu_forge_result (void *sock, uint64_t chunk, uint32_t k, uint32_t count)
{
    dp_batch_t batch;
    dp_batch_init (&batch);
    for (uint32_t i = 0; i < count; i++)
        dp_batch_add (&batch, "FORGED", 6);
    dp_msg_t msg;
    dp_msg_init (&msg, DP_CMD_RESULT);
    msg.chunk = chunk;
    msg.k = k;
    REQUIRE (dp_batch_attach (&batch, &msg, true) == 0);
    tu_send (sock, &msg);
    dp_batch_clear (&batch);
}
