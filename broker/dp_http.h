/*  =========================================================================
    dp_http - dpool-broker's metrics endpoint (libmicrohttpd)

    A libmicrohttpd daemon on its own thread serves GET /metrics: the last
    text handed to dp_http_publish, copied under a mutex. The broker's
    thread publishes a fresh rendering every tick (dp_broker_opts_t
    metrics_fn); a scrape never touches the broker's tables or waits on its
    loop. Only dpool-broker links this (and libmicrohttpd); libdpool does
    not.
    =========================================================================
*/
#ifndef DP_HTTP_H_INCLUDED
#define DP_HTTP_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct dp_http dp_http_t;

//  Serve on `spec`, ADDR:PORT ([IPV6]:PORT; :PORT is 127.0.0.1; port 0 takes
//  a free one). A non-loopback address is refused unless `public`. Returns
//  the server, or NULL with the reason in err.
dp_http_t *dp_http_new (const char *spec, bool public, char *err, size_t errlen);

//  Stop the server's thread and free it. Nulls the pointer; takes NULL.
void dp_http_destroy (dp_http_t **self_p);

//  The port it listens on, and its URL ("http://127.0.0.1:9464/metrics").
uint16_t dp_http_port (const dp_http_t *self);
const char *dp_http_url (const dp_http_t *self);

//  Replace the text served (a dp_metrics_fn: `text` is malloc'd and now
//  owned by the server). Thread-safe; called from the broker's thread.
void dp_http_publish (void *self, char *text, size_t size);

#endif
