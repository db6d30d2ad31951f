/*  =========================================================================
    dp_curve - CurveZMQ keys, allow-lists and the server directory

    The ZAP handler: libzmq asks inproc://zeromq.zap.01 of the socket's
    context about every CURVE handshake; without a handler it lets any key
    in. One handler serves the process (tests and embedders may run several
    brokers), so each broker socket has its own ZAP domain, and the handler
    keeps one zcertstore (refreshed when its directory changes) per domain.
    A request for an unknown domain, a mechanism other than CURVE or a key
    not in the domain's store is answered 400.
    =========================================================================
*/
#include "dp_curve.h"

#include <czmq.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_ZAP_ENDPOINT  "inproc://zeromq.zap.01"
#define S_ZERO_KEY      "0000000000000000000000000000000000000000"

//  --------------------------------------------------------------------------
//  Key files

int
dp_curve_keygen (const char *path, char *err, size_t errlen)
{
    char secret [4096];
    if (!path || !*path || strlen (path) > sizeof secret - 8) {
        snprintf (err, errlen, "bad key file name");
        return -1;
    }
    snprintf (secret, sizeof secret, "%s_secret", path);
    if (access (path, F_OK) == 0 || access (secret, F_OK) == 0) {
        snprintf (err, errlen, "%s or %s exists already: not overwritten", path, secret);
        return -1;
    }
    zcert_t *cert = zcert_new ();
    if (!cert) {
        snprintf (err, errlen, "cannot make a key pair");
        return -1;
    }
    zcert_set_meta (cert, "created-by", "dpool keygen");
    mode_t mask = umask (077);      //  the secret is never readable by others
    int rc = zcert_save (cert, path);
    umask (mask);
    zcert_destroy (&cert);
    if (rc != 0) {
        snprintf (err, errlen, "cannot write %s: %s", path, strerror (errno));
        return -1;
    }
    chmod (secret, 0600);
    chmod (path, 0644);
    return 0;
}

int
dp_curve_load_secret (const char *file, dp_curve_keys_t *keys, char *err, size_t errlen)
{
    if (access (file, R_OK) != 0) {
        snprintf (err, errlen, "cannot read secret key file %s: %s", file, strerror (errno));
        return -1;
    }
    zcert_t *cert = zcert_load (file);      //  FILE_secret if there is one, else FILE
    if (!cert) {
        snprintf (err, errlen, "%s is not a key file (make one with 'dpool keygen PATH')", file);
        return -1;
    }
    snprintf (keys->public_txt, DP_CURVE_KEY_TXT, "%s", zcert_public_txt (cert));
    snprintf (keys->secret_txt, DP_CURVE_KEY_TXT, "%s", zcert_secret_txt (cert));
    zcert_destroy (&cert);
    //  the secret must be there, and be the public key's
    uint8_t secret [32];
    char derived [DP_CURVE_KEY_TXT];
    if (strcmp (keys->secret_txt, S_ZERO_KEY) == 0
    ||  zmq_curve_public (derived, keys->secret_txt) != 0
    ||  strcmp (derived, keys->public_txt) != 0
    ||  !zmq_z85_decode (secret, keys->secret_txt)) {
        snprintf (err, errlen, "%s holds no secret key (give the PATH_secret file "
                  "'dpool keygen PATH' wrote)", file);
        return -1;
    }
    snprintf (keys->source, sizeof keys->source, "%.255s", file);
    keys->on = true;
    return 0;
}

int
dp_curve_load_public (const char *file, char txt [DP_CURVE_KEY_TXT], char *err, size_t errlen)
{
    if (access (file, R_OK) != 0) {
        snprintf (err, errlen, "cannot read public key file %s: %s", file, strerror (errno));
        return -1;
    }
    zcert_t *cert = zcert_load (file);
    if (!cert || strlen (zcert_public_txt (cert)) != 40) {
        zcert_destroy (&cert);
        snprintf (err, errlen, "%s is not a key file (the broker's public key, "
                  "written by 'dpool keygen PATH')", file);
        return -1;
    }
    snprintf (txt, DP_CURVE_KEY_TXT, "%s", zcert_public_txt (cert));
    zcert_destroy (&cert);
    return 0;
}

//  --------------------------------------------------------------------------
//  The server directory

const char *
dp_curve_server_dir (const char *given, char *buf, size_t size)
{
    const char *env = getenv ("DPOOL_SERVER_DIR");
    const char *home = getenv ("HOME");
    if (given && *given)
        snprintf (buf, size, "%s", given);
    else
    if (env && *env)
        snprintf (buf, size, "%s", env);
    else
    if (home && *home)
        snprintf (buf, size, "%s/.dpool/server", home);
    else
        return NULL;
    return buf;
}

//  Read the endpoints file: the line for `role`, if its broker still runs.
int
dp_curve_server_endpoint (const char *dir, const char *role, char *buf, size_t size)
{
    char path [4200];
    snprintf (path, sizeof path, "%s/endpoints", dir);
    FILE *file = fopen (path, "r");
    if (!file)
        return -1;
    char line [1024], key [32], value [1000];
    long pid = 0;
    int found = -1;
    while (fgets (line, sizeof line, file))
        if (sscanf (line, "%31s %999s", key, value) == 2) {
            if (strcmp (key, "pid") == 0)
                pid = atol (value);
            if (strcmp (key, role) == 0 && strcmp (value, "-") != 0) {
                snprintf (buf, size, "%s", value);
                found = 0;
            }
        }
    fclose (file);
    if (pid <= 0 || (kill ((pid_t) pid, 0) != 0 && errno == ESRCH))
        return -1;
    return found;
}

//  Does `endpoint` name what the broker bound as `listed`? Equal, or a
//  wildcard host (*, 0.0.0.0) and the same port.
static bool
s_endpoint_matches (const char *listed, const char *endpoint)
{
    if (strcmp (listed, endpoint) == 0)
        return true;
    if (strncmp (listed, "tcp://", 6) || strncmp (endpoint, "tcp://", 6))
        return false;
    const char *lport = strrchr (listed, ':'), *eport = strrchr (endpoint, ':');
    if (!lport || !eport || strcmp (lport, eport) != 0)
        return false;
    size_t host = (size_t) (lport - listed) - 6;
    return (host == 1 && listed [6] == '*') || (host == 7 && strncmp (listed + 6, "0.0.0.0", 7) == 0);
}

int
dp_curve_client_keys (const char *secret_file, const char *broker_key_file,
                      const char *role, const char *endpoint,
                      dp_curve_keys_t *keys, char *err, size_t errlen)
{
    memset (keys, 0, sizeof *keys);
    if (secret_file || broker_key_file) {
        if (!secret_file || !broker_key_file) {
            snprintf (err, errlen, "CURVE needs both a secret key file (--curve-secret) "
                      "and the broker's public key file (--broker-key)");
            return -1;
        }
        if (dp_curve_load_secret (secret_file, keys, err, errlen)
        ||  dp_curve_load_public (broker_key_file, keys->server_txt, err, errlen)) {
            keys->on = false;
            return -1;
        }
        return 0;
    }
    //  the server directory, when it lists this endpoint
    char dir [4096], listed [1024], file [4200];
    if (!endpoint || !dp_curve_server_dir (NULL, dir, sizeof dir)
    ||  dp_curve_server_endpoint (dir, strcmp (role, "worker") ? "clients" : "workers",
                                  listed, sizeof listed)
    ||  !s_endpoint_matches (listed, endpoint))
        return 0;
    char why [512];
    snprintf (file, sizeof file, "%s/%s_secret", dir, role);
    if (dp_curve_load_secret (file, keys, why, sizeof why) == 0) {
        snprintf (file, sizeof file, "%s/broker", dir);
        if (dp_curve_load_public (file, keys->server_txt, why, sizeof why) == 0) {
            snprintf (keys->source, sizeof keys->source, "%.255s", dir);
            return 0;
        }
    }
    //  listed but unreadable: say so rather than try plaintext
    memset (keys, 0, sizeof *keys);
    snprintf (err, errlen, "server directory %s lists %s but: %s", dir, endpoint, why);
    return -1;
}

bool
dp_curve_keys_appeared (const char *role, const char *endpoint)
{
    dp_curve_keys_t keys;
    char why [1024];
    return dp_curve_client_keys (NULL, NULL, role, endpoint, &keys, why, sizeof why) == 0
        && keys.on;
}

int
dp_curve_client_apply (void *socket, const dp_curve_keys_t *keys)
{
    if (!keys || !keys->on)
        return 0;
    if (zmq_setsockopt (socket, ZMQ_CURVE_SERVERKEY, keys->server_txt, 40)
    ||  zmq_setsockopt (socket, ZMQ_CURVE_PUBLICKEY, keys->public_txt, 40)
    ||  zmq_setsockopt (socket, ZMQ_CURVE_SECRETKEY, keys->secret_txt, 40))
        return -1;
    return 0;
}

//  Make `path` a key pair unless it is one already; copy its public key
//  into the allow-list `allow` (a directory) when given.
static int
s_dir_key (const char *dir, const char *name, const char *allow, char *err, size_t errlen)
{
    char path [4200], secret [4300];
    snprintf (path, sizeof path, "%s/%s", dir, name);
    snprintf (secret, sizeof secret, "%s_secret", path);
    if (access (secret, F_OK) != 0) {
        unlink (path);
        if (dp_curve_keygen (path, err, errlen))
            return -1;
    }
    if (!allow)
        return 0;
    char listed [4300];
    snprintf (listed, sizeof listed, "%s/%s/%s", dir, allow, name);
    if (access (listed, F_OK) == 0)
        return 0;
    zcert_t *cert = zcert_load (path);
    int rc = cert ? zcert_save_public (cert, listed) : -1;
    zcert_destroy (&cert);
    if (rc) {
        snprintf (err, errlen, "cannot write %s", listed);
        return -1;
    }
    return 0;
}

static int
s_mkdir (const char *path, char *err, size_t errlen)
{
    if (mkdir (path, 0700) != 0 && errno != EEXIST) {
        snprintf (err, errlen, "cannot make directory %s: %s", path, strerror (errno));
        return -1;
    }
    return 0;
}

int
dp_curve_server_dir_init (const char *dir, dp_curve_keys_t *broker, char *err, size_t errlen)
{
    //  the missing parents ($HOME/.dpool) too, private
    char parent [4096];
    snprintf (parent, sizeof parent, "%s", dir);
    for (char *slash = strchr (parent + 1, '/'); slash; slash = strchr (slash + 1, '/')) {
        *slash = 0;
        if (access (parent, F_OK) != 0 && s_mkdir (parent, err, errlen))
            return -1;
        *slash = '/';
    }
    if (s_mkdir (dir, err, errlen))
        return -1;
    struct stat st;
    if (stat (dir, &st) != 0 || !S_ISDIR (st.st_mode)) {
        snprintf (err, errlen, "server directory %s is not a directory", dir);
        return -1;
    }
    if (st.st_uid != geteuid () || (st.st_mode & 022)) {
        snprintf (err, errlen, "server directory %s must be ours and not writable by others "
                  "(chmod 700 %s)", dir, dir);
        return -1;
    }
    char path [4200];
    snprintf (path, sizeof path, "%s/allow-clients", dir);
    if (s_mkdir (path, err, errlen))
        return -1;
    snprintf (path, sizeof path, "%s/allow-workers", dir);
    if (s_mkdir (path, err, errlen))
        return -1;
    if (s_dir_key (dir, "broker", NULL, err, errlen)
    ||  s_dir_key (dir, "client", "allow-clients", err, errlen)
    ||  s_dir_key (dir, "worker", "allow-workers", err, errlen))
        return -1;
    snprintf (path, sizeof path, "%s/broker_secret", dir);
    return dp_curve_load_secret (path, broker, err, errlen);
}

int
dp_curve_server_dir_endpoints (const char *dir, const char *clients, const char *workers,
                               char *err, size_t errlen)
{
    char path [4200], tmp [4300];
    snprintf (path, sizeof path, "%s/endpoints", dir);
    snprintf (tmp, sizeof tmp, "%s.%d", path, (int) getpid ());
    FILE *file = fopen (tmp, "w");
    if (!file
    ||  fprintf (file, "pid %d\nclients %s\nworkers %s\n", (int) getpid (),
                 clients ? clients : "-", workers ? workers : "-") < 0
    ||  fclose (file) != 0
    ||  rename (tmp, path) != 0) {
        snprintf (err, errlen, "cannot write %s: %s", path, strerror (errno));
        unlink (tmp);
        return -1;
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  The ZAP handler

static pthread_mutex_t s_zap_lock = PTHREAD_MUTEX_INITIALIZER;
static zactor_t *s_zap;
static int s_zap_domains;

//  Answer one ZAP request (RFC 27) on `handler`.
static void
s_zap_answer (zsock_t *handler, zhashx_t *stores)
{
    zmsg_t *request = zmsg_recv (handler);
    if (!request)
        return;
    char *version = zmsg_popstr (request);
    char *sequence = zmsg_popstr (request);
    char *domain = zmsg_popstr (request);
    char *address = zmsg_popstr (request);
    char *identity = zmsg_popstr (request);
    char *mechanism = zmsg_popstr (request);
    zframe_t *key = zmsg_pop (request);
    const char *status = "400", *text = "key not allowed";
    zcertstore_t *store = domain ? (zcertstore_t *) zhashx_lookup (stores, domain) : NULL;
    if (version && streq (version, "1.0") && mechanism && streq (mechanism, "CURVE")
    &&  store && key && zframe_size (key) == 32) {
        char txt [DP_CURVE_KEY_TXT];
        zmq_z85_encode (txt, zframe_data (key), 32);
        if (zcertstore_lookup (store, txt)) {
            status = "200";
            text = "OK";
        }
    }
    zmsg_t *reply = zmsg_new ();
    zmsg_addstr (reply, "1.0");
    zmsg_addstr (reply, sequence ? sequence : "");
    zmsg_addstr (reply, status);
    zmsg_addstr (reply, text);
    zmsg_addstr (reply, "");
    zmsg_addstr (reply, "");
    zmsg_send (&reply, handler);
    zframe_destroy (&key);
    zstr_free (&version);
    zstr_free (&sequence);
    zstr_free (&domain);
    zstr_free (&address);
    zstr_free (&identity);
    zstr_free (&mechanism);
    zmsg_destroy (&request);
}

//  The handler actor. Commands: ADD DOMAIN DIR, DEL DOMAIN (each answered
//  with a signal, 0 done), $TERM.
static void
s_zap_actor (zsock_t *pipe, void *args)
{
    (void) args;
    zsock_t *handler = zsock_new (ZMQ_REP);
    if (!handler || zsock_bind (handler, S_ZAP_ENDPOINT) != 0) {
        zsock_destroy (&handler);
        zsock_signal (pipe, 1);
        return;
    }
    zhashx_t *stores = zhashx_new ();
    zhashx_set_destructor (stores, (zhashx_destructor_fn *) zcertstore_destroy);
    zsock_signal (pipe, 0);
    zpoller_t *poller = zpoller_new (pipe, handler, NULL);
    bool running = true;
    while (running) {
        zsock_t *which = (zsock_t *) zpoller_wait (poller, -1);
        if (which == handler) {
            s_zap_answer (handler, stores);
            continue;
        }
        if (which != pipe)
            break;                  //  interrupted: the context is going
        char *command = NULL, *domain = NULL, *dir = NULL;
        if (zstr_recvx (pipe, &command, &domain, &dir, NULL) < 1)
            break;
        if (streq (command, "$TERM"))
            running = false;
        else
        if (streq (command, "ADD") && domain && dir) {
            zcertstore_t *store = zcertstore_new (dir);
            if (store)
                zhashx_update (stores, domain, store);
            zsock_signal (pipe, store ? 0 : 1);
        }
        else
        if (streq (command, "DEL") && domain) {
            zhashx_delete (stores, domain);
            zsock_signal (pipe, 0);
        }
        zstr_free (&command);
        zstr_free (&domain);
        zstr_free (&dir);
    }
    zpoller_destroy (&poller);
    zhashx_destroy (&stores);
    zsock_destroy (&handler);
}

int
dp_curve_server_apply (void *socket, const dp_curve_keys_t *keys, const char *domain,
                       const char *allow_dir, char *err, size_t errlen)
{
    struct stat st;
    if (!allow_dir || stat (allow_dir, &st) != 0 || !S_ISDIR (st.st_mode)
    ||  access (allow_dir, R_OK | X_OK) != 0) {
        snprintf (err, errlen, "cannot read allow-list directory %s: %s",
                  allow_dir ? allow_dir : "(none)", strerror (errno ? errno : ENOTDIR));
        return -1;
    }
    //  DPOOL_TEST_NO_ZAP (tests only): no handler, so that the self-check
    //  can be seen to refuse a broker that would let any key in
    const char *no_zap = getenv ("DPOOL_TEST_NO_ZAP");
    pthread_mutex_lock (&s_zap_lock);
    if (!s_zap && !(no_zap && *no_zap))
        s_zap = zactor_new (s_zap_actor, NULL);
    int rc = -1;
    if (no_zap && *no_zap)
        rc = 0;
    else
    if (!s_zap)
        snprintf (err, errlen, "cannot start the ZAP handler (another one is bound "
                  "to %s in this process?)", S_ZAP_ENDPOINT);
    else {
        zstr_sendx (s_zap, "ADD", domain, allow_dir, NULL);
        rc = zsock_wait (s_zap) == 0 ? 0 : -1;
        if (rc)
            snprintf (err, errlen, "cannot load allow-list directory %s", allow_dir);
        else
            s_zap_domains++;
    }
    if (rc && s_zap_domains == 0)
        zactor_destroy (&s_zap);
    pthread_mutex_unlock (&s_zap_lock);
    if (rc)
        return -1;
    int on = 1;
    if (zmq_setsockopt (socket, ZMQ_ZAP_DOMAIN, domain, strlen (domain))
    ||  zmq_setsockopt (socket, ZMQ_CURVE_SERVER, &on, sizeof on)
    ||  zmq_setsockopt (socket, ZMQ_CURVE_SECRETKEY, keys->secret_txt, 40)) {
        snprintf (err, errlen, "cannot set CURVE options: %s", zmq_strerror (errno));
        dp_curve_server_release (domain);
        return -1;
    }
    return 0;
}

void
dp_curve_server_release (const char *domain)
{
    pthread_mutex_lock (&s_zap_lock);
    if (s_zap && s_zap_domains > 0) {
        zstr_sendx (s_zap, "DEL", domain, NULL);
        zsock_wait (s_zap);
        if (--s_zap_domains <= 0) {
            zactor_destroy (&s_zap);
            s_zap_domains = 0;
        }
    }
    pthread_mutex_unlock (&s_zap_lock);
}

//  --------------------------------------------------------------------------
//  Handshakes

//  A monitor PAIR on `socket` for its handshake events, or NULL.
static void *
s_monitor (void *ctx, void *socket, const char *tag)
{
    static int counter;
    char endpoint [96];
    snprintf (endpoint, sizeof endpoint, "inproc://dp-curve-%s-%p-%d", tag, socket,
              __atomic_add_fetch (&counter, 1, __ATOMIC_RELAXED));
    if (zmq_socket_monitor (socket, endpoint, ZMQ_EVENT_HANDSHAKE_SUCCEEDED
                            | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
                            | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
                            | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) != 0)
        return NULL;
    void *pair = zmq_socket (ctx ? ctx : zsys_init (), ZMQ_PAIR);
    int linger = 0;
    if (pair)
        zmq_setsockopt (pair, ZMQ_LINGER, &linger, sizeof linger);
    if (pair && zmq_connect (pair, endpoint) != 0) {
        zmq_close (pair);
        pair = NULL;
    }
    if (!pair)
        zmq_socket_monitor (socket, NULL, 0);
    return pair;
}

//  Read one event from a monitor PAIR within `timeout` ms: its id, its
//  value in *value; 0 when none came.
static int
s_event (void *pair, int timeout, uint32_t *value)
{
    zmq_pollitem_t item = { pair, 0, ZMQ_POLLIN, 0 };
    if (zmq_poll (&item, 1, timeout) <= 0)
        return 0;
    zmsg_t *msg = zmsg_recv (pair);
    zframe_t *first = msg ? zmsg_first (msg) : NULL;
    int event = 0;
    if (first && zframe_size (first) >= 6) {
        uint16_t id;
        memcpy (&id, zframe_data (first), 2);
        memcpy (value, zframe_data (first) + 2, 4);
        event = id;
    }
    zmsg_destroy (&msg);
    return event;
}

//  Where to connect to reach what a socket bound: a wildcard host
//  becomes loopback.
static void
s_reachable (const char *bound, char *buf, size_t size)
{
    if (strncmp (bound, "tcp://0.0.0.0:", 14) == 0)
        snprintf (buf, size, "tcp://127.0.0.1:%s", bound + 14);
    else
    if (strncmp (bound, "tcp://[::]:", 11) == 0)
        snprintf (buf, size, "tcp://[::1]:%s", bound + 11);
    else
        snprintf (buf, size, "%s", bound);
}

int
dp_curve_self_check (const char *endpoint, const dp_curve_keys_t *keys, char *err, size_t errlen)
{
    char target [512];
    s_reachable (endpoint, target, sizeof target);
    zcert_t *stranger = zcert_new ();
    void *probe = zmq_socket (zsys_init (), ZMQ_DEALER);
    void *monitor = probe ? s_monitor (NULL, probe, "check") : NULL;
    int rc = -1;
    if (!stranger || !monitor) {
        snprintf (err, errlen, "CURVE self-check: cannot make a probe socket");
        goto done;
    }
    int linger = 0;
    zmq_setsockopt (probe, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt (probe, ZMQ_CURVE_SERVERKEY, keys->public_txt, 40);
    zmq_setsockopt (probe, ZMQ_CURVE_PUBLICKEY, zcert_public_txt (stranger), 40);
    zmq_setsockopt (probe, ZMQ_CURVE_SECRETKEY, zcert_secret_txt (stranger), 40);
    if (zmq_connect (probe, target) != 0) {
        snprintf (err, errlen, "CURVE self-check: cannot connect to %s: %s", target,
                  zmq_strerror (errno));
        goto done;
    }
    //  a handshake takes milliseconds; the margin is for valgrind and loaded hosts
    int64_t deadline = zclock_mono () + 15000;
    snprintf (err, errlen, "CURVE self-check: no handshake with %s within 15 s", target);
    while (zclock_mono () < deadline) {
        uint32_t value = 0;
        int event = s_event (monitor, (int) (deadline - zclock_mono ()), &value);
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
            rc = 0;
            break;
        }
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            snprintf (err, errlen, "CURVE self-check: %s let an unknown key in (no working "
                      "ZAP handler): refusing to run", target);
            break;
        }
        if (event) {
            snprintf (err, errlen, "CURVE self-check: handshake with %s failed oddly "
                      "(event 0x%x, %u)", target, (unsigned) event, value);
            break;
        }
    }
done:
    if (monitor) {
        zmq_socket_monitor (probe, NULL, 0);
        zmq_close (monitor);
    }
    if (probe)
        zmq_close (probe);
    zcert_destroy (&stranger);
    return rc;
}

bool
dp_curve_endpoint_is_local (const char *endpoint)
{
    if (strncmp (endpoint, "ipc://", 6) == 0 || strncmp (endpoint, "inproc://", 9) == 0)
        return true;
    if (strncmp (endpoint, "tcp://", 6) != 0)
        return false;
    const char *host = endpoint + 6;
    //  a source address (tcp://SRC;HOST:PORT) is for connects only
    if (strchr (host, ';'))
        return false;
    const char *colon = strrchr (host, ':');
    size_t len = colon ? (size_t) (colon - host) : strlen (host);
    if (len == 9 && strncmp (host, "localhost", 9) == 0)
        return true;
    if (len == 5 && strncmp (host, "[::1]", 5) == 0)
        return true;
    if (len == 2 && strncmp (host, "lo", 2) == 0)
        return true;
    //  127.0.0.0/8, written as four numbers
    unsigned a, b, c, d;
    char tail;
    char ip [64];
    if (len >= sizeof ip)
        return false;
    memcpy (ip, host, len);
    ip [len] = 0;
    return sscanf (ip, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) == 4
        && a == 127 && b < 256 && c < 256 && d < 256;
}

//  --------------------------------------------------------------------------
//  Client handshake watch

struct dp_curve_watch {
    void *socket, *monitor;
    char why [256];
};

dp_curve_watch_t *
dp_curve_watch_new (void *ctx, void *socket)
{
    dp_curve_watch_t *self = (dp_curve_watch_t *) zmalloc (sizeof *self);
    self->socket = socket;
    self->monitor = s_monitor (ctx, socket, "watch");
    if (!self->monitor)
        freen (self);
    return self;
}

const char *
dp_curve_watch_why (dp_curve_watch_t *self, bool curve_on)
{
    if (!self)
        return NULL;
    const char *why = NULL;
    uint32_t value;
    int event;
    while ((event = s_event (self->monitor, 0, &value))) {
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
            why = NULL;
        else
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
            why = "the broker refused our key (it is not in the broker's allow-list "
                  "for this role)";
        else
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
        &&  value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
            why = curve_on ? "the broker does not use CURVE but we do (--curve-secret, "
                             "--broker-key or the server directory)"
                           : "the broker requires CURVE authentication: give --curve-secret "
                             "and --broker-key, or run where its server directory is readable";
        else
        if (curve_on)
            why = "the CURVE handshake failed: a wrong broker public key (--broker-key), "
                  "a broker without CURVE, or not a dpool broker";
        else
            why = "the handshake failed: the broker requires CURVE authentication? Give "
                  "--curve-secret and --broker-key, or run where its server directory is "
                  "readable";
    }
    if (why)
        snprintf (self->why, sizeof self->why, "%s", why);
    return why ? self->why : NULL;
}

void
dp_curve_watch_destroy (dp_curve_watch_t **self_p)
{
    dp_curve_watch_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    zmq_socket_monitor (self->socket, NULL, 0);
    zmq_close (self->monitor);
    freen (self);
    *self_p = NULL;
}
