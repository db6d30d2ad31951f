/*  =========================================================================
    dp_http - dpool-broker's metrics endpoint (see dp_http.h)

    libmicrohttpd runs the HTTP side on its own thread (internal polling,
    a bounded number of connections, a timeout for slow ones). The text it
    serves is swapped in by dp_http_publish under the same mutex a request
    holds while it copies the text into its response: a pointer swap on
    one side, one copy on the other.
    =========================================================================
*/
#include "dp_http.h"
#include "dp_opt.h"

#include <arpa/inet.h>
#include <czmq.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dp_http {
    struct MHD_Daemon *daemon;
    pthread_mutex_t lock;       //  guards text / size
    char *text;                 //  the latest rendering (owned)
    size_t size;
    uint16_t port;
    char url [96];
};

static enum MHD_Result
s_reply (struct MHD_Connection *connection, unsigned status, const char *type,
         const char *body, size_t size)
{
    struct MHD_Response *response =
        MHD_create_response_from_buffer (size, (void *) body, MHD_RESPMEM_MUST_COPY);
    if (!response)
        return MHD_NO;
    MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    enum MHD_Result rc = MHD_queue_response (connection, status, response);
    MHD_destroy_response (response);
    return rc;
}

//  GET /metrics: the latest rendering. Anything else: 404 or 405.
static enum MHD_Result
s_on_request (void *cls, struct MHD_Connection *connection, const char *url,
              const char *method, const char *version, const char *upload_data,
              size_t *upload_data_size, void **con_cls)
{
    dp_http_t *self = (dp_http_t *) cls;
    static const char *plain = "text/plain; charset=utf-8";
    if (strcmp (method, MHD_HTTP_METHOD_GET) && strcmp (method, MHD_HTTP_METHOD_HEAD))
        return s_reply (connection, MHD_HTTP_METHOD_NOT_ALLOWED, plain, "GET only\n", 9);
    if (*upload_data_size)
        return MHD_NO;              //  a GET with a body: drop the connection
    if (strcmp (url, "/metrics") != 0)
        return s_reply (connection, MHD_HTTP_NOT_FOUND, plain, "dpool: see /metrics\n", 20);
    pthread_mutex_lock (&self->lock);
    enum MHD_Result rc = s_reply (connection, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
                                  self->text ? self->text : "", self->text ? self->size : 0);
    pthread_mutex_unlock (&self->lock);
    return rc;
}

//  Parse ADDR:PORT ([IPV6]:PORT, :PORT for 127.0.0.1) into a socket address.
//  Returns 0, or -1 with the reason in err.
static int
s_parse_address (const char *spec, struct sockaddr_storage *addr, char *err, size_t errlen)
{
    const char *colon = strrchr (spec, ':');
    if (!colon || !colon [1]) {
        snprintf (err, errlen, "--metrics '%s': want ADDR:PORT", spec);
        return -1;
    }
    char host [128];
    size_t len = (size_t) (colon - spec);
    if (len >= sizeof host) {
        snprintf (err, errlen, "--metrics '%s': address too long", spec);
        return -1;
    }
    memcpy (host, spec, len);
    host [len] = 0;
    char *name = host;
    if (len >= 2 && host [0] == '[' && host [len - 1] == ']') {
        host [len - 1] = 0;
        name = host + 1;
    }
    if (!*name)
        name = "127.0.0.1";
    uint64_t port;
    if (dp_opt_uint (colon + 1, 0, 65535, &port)) {
        snprintf (err, errlen, "--metrics '%s': bad port", spec);
        return -1;
    }
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *found = NULL;
    int rc = getaddrinfo (name, NULL, &hints, &found);
    if (rc != 0 || !found) {
        snprintf (err, errlen, "--metrics '%s': %s", spec, gai_strerror (rc));
        return -1;
    }
    memset (addr, 0, sizeof *addr);
    memcpy (addr, found->ai_addr, found->ai_addrlen);
    freeaddrinfo (found);
    if (addr->ss_family == AF_INET)
        ((struct sockaddr_in *) addr)->sin_port = htons ((uint16_t) port);
    else
        ((struct sockaddr_in6 *) addr)->sin6_port = htons ((uint16_t) port);
    return 0;
}

static bool
s_loopback (const struct sockaddr_storage *addr)
{
    if (addr->ss_family == AF_INET)
        return (ntohl (((const struct sockaddr_in *) addr)->sin_addr.s_addr) >> 24) == 127;
    return addr->ss_family == AF_INET6
        && IN6_IS_ADDR_LOOPBACK (&((const struct sockaddr_in6 *) addr)->sin6_addr);
}

dp_http_t *
dp_http_new (const char *spec, bool public, char *err, size_t errlen)
{
    struct sockaddr_storage addr;
    if (s_parse_address (spec, &addr, err, errlen))
        return NULL;
    if (!s_loopback (&addr) && !public) {
        snprintf (err, errlen, "--metrics %s is not a loopback address "
                  "(add --metrics-public to serve it there)", spec);
        return NULL;
    }
    dp_http_t *self = (dp_http_t *) zmalloc (sizeof (dp_http_t));
    pthread_mutex_init (&self->lock, NULL);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG;
    if (addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    errno = 0;
    self->daemon = MHD_start_daemon (flags, 0, NULL, NULL, s_on_request, self,
                                     MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &addr,
                                     MHD_OPTION_CONNECTION_LIMIT, (unsigned) 32,
                                     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) 10,
                                     MHD_OPTION_END);
    if (!self->daemon) {
        snprintf (err, errlen, "--metrics %s: cannot serve there (%s)", spec,
                  errno ? strerror (errno) : "libmicrohttpd failed");
        pthread_mutex_destroy (&self->lock);
        free (self);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info (self->daemon, MHD_DAEMON_INFO_BIND_PORT);
    self->port = info ? info->port : 0;
    char numeric [INET6_ADDRSTRLEN] = "?";
    if (addr.ss_family == AF_INET6)
        inet_ntop (AF_INET6, &((struct sockaddr_in6 *) &addr)->sin6_addr, numeric, sizeof numeric);
    else
        inet_ntop (AF_INET, &((struct sockaddr_in *) &addr)->sin_addr, numeric, sizeof numeric);
    snprintf (self->url, sizeof self->url, "http://%s%s%s:%u/metrics", addr.ss_family == AF_INET6 ? "[" : "",
              numeric, addr.ss_family == AF_INET6 ? "]" : "", self->port);
    return self;
}

void
dp_http_destroy (dp_http_t **self_p)
{
    dp_http_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    MHD_stop_daemon (self->daemon);
    pthread_mutex_destroy (&self->lock);
    free (self->text);
    free (self);
    *self_p = NULL;
}

uint16_t
dp_http_port (const dp_http_t *self)
{
    return self->port;
}

const char *
dp_http_url (const dp_http_t *self)
{
    return self->url;
}

void
dp_http_publish (void *arg, char *text, size_t size)
{
    dp_http_t *self = (dp_http_t *) arg;
    pthread_mutex_lock (&self->lock);
    char *old = self->text;
    self->text = text;
    self->size = size;
    pthread_mutex_unlock (&self->lock);
    free (old);
}
