/*  =========================================================================
    dp_curve - CurveZMQ keys, allow-lists and the server directory

    Key files are CZMQ certificates (zcert): `dpool keygen PATH` writes
    PATH (public key) and PATH_secret (both keys). The broker is a CURVE
    server on its client and worker sockets, each with its own ZAP domain
    checked against its own allow-list directory by one ZAP handler per
    process, so a client key cannot register as a worker or the other way
    round. Clients and workers are CURVE clients: they know the broker's
    public key, so a broker without the matching secret gets nothing.

    The server directory (`--server-dir`, $DPOOL_SERVER_DIR, default
    $HOME/.dpool/server, mode 0700) makes this work with no options: the
    broker creates it with its own key pair, one client and one worker key
    pair, the allow-lists and its endpoints; clients and workers that can
    read it use those keys for an endpoint it lists.
    =========================================================================
*/
#ifndef DP_CURVE_H_INCLUDED
#define DP_CURVE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

#define DP_CURVE_KEY_TXT 41         //  Z85 key and its NUL

//  The keys one end of a connection uses. `on` false: plaintext.
typedef struct {
    bool on;
    char public_txt [DP_CURVE_KEY_TXT];     //  ours
    char secret_txt [DP_CURVE_KEY_TXT];     //  ours
    char server_txt [DP_CURVE_KEY_TXT];     //  the broker's public key (clients)
    char source [256];                      //  where they came from, for messages
} dp_curve_keys_t;

//  Write a new key pair: PATH (public) and PATH_secret (mode 0600).
//  Refuses to overwrite. Returns 0, or -1 with the reason in err.
int dp_curve_keygen (const char *path, char *err, size_t errlen);

//  Load our key pair from a secret key file (PATH_secret; PATH is accepted
//  when PATH_secret exists). Returns 0, or -1 with the reason in err.
int dp_curve_load_secret (const char *file, dp_curve_keys_t *keys, char *err, size_t errlen);

//  Load a public key (the broker's) into `txt`. Returns 0 or -1 (err).
int dp_curve_load_public (const char *file, char txt [DP_CURVE_KEY_TXT], char *err, size_t errlen);

//  The keys a client (`role` "client") or worker ("worker") uses to reach
//  `endpoint`: the files given (both or neither), else the server
//  directory's when it lists `endpoint`, else none (keys->on false).
//  Returns 0, or -1 with the reason in err (a file given but unreadable).
int dp_curve_client_keys (const char *secret_file, const char *broker_key_file,
                          const char *role, const char *endpoint,
                          dp_curve_keys_t *keys, char *err, size_t errlen);

//  After a connection made without keys (a peer started just before its
//  broker wrote its server directory): does the server directory list
//  `endpoint` for `role` with readable keys now?
bool dp_curve_keys_appeared (const char *role, const char *endpoint);

//  Set a client socket's CURVE options (nothing when keys->on is false).
//  Returns 0 or -1 (errno).
int dp_curve_client_apply (void *socket, const dp_curve_keys_t *keys);

//  The server directory: `given`, else $DPOOL_SERVER_DIR, else
//  $HOME/.dpool/server. Written to buf; returns buf, or NULL without HOME.
const char *dp_curve_server_dir (const char *given, char *buf, size_t size);

//  The endpoint `role` ("clients" or "workers") the server directory at
//  `dir` lists for a broker that still runs, into buf. Returns 0 or -1.
int dp_curve_server_endpoint (const char *dir, const char *role, char *buf, size_t size);

//  Create the server directory (mode 0700) and what is missing in it: the
//  broker's, a client's and a worker's key pairs and the allow-lists
//  allow-clients/ and allow-workers/. Fills the broker's keys. Refuses a
//  directory that others may write. Returns 0, or -1 with err.
int dp_curve_server_dir_init (const char *dir, dp_curve_keys_t *broker, char *err, size_t errlen);

//  Record the broker's endpoints (and pid) in the server directory.
int dp_curve_server_dir_endpoints (const char *dir, const char *clients, const char *workers,
                                   char *err, size_t errlen);

//  Make `socket` a CURVE server with the broker's keys whose peers are
//  checked against the allow-list directory `allow_dir` under ZAP domain
//  `domain` (unique in the process). Starts the process's ZAP handler on
//  first use. Call before binding. Returns 0, or -1 with err.
int dp_curve_server_apply (void *socket, const dp_curve_keys_t *keys, const char *domain,
                           const char *allow_dir, char *err, size_t errlen);

//  Forget a domain (the socket is closed); stops the handler with the last.
void dp_curve_server_release (const char *domain);

//  Handshake with `endpoint` (bound by a CURVE server whose public key is
//  keys->public_txt) using a throwaway key that no allow-list has: returns
//  0 when it is refused, -1 with the reason in err when it is let in or
//  nothing answers.
int dp_curve_self_check (const char *endpoint, const dp_curve_keys_t *keys, char *err, size_t errlen);

//  Is `endpoint` one that stays on this host (ipc, inproc, tcp on a
//  loopback address)?
bool dp_curve_endpoint_is_local (const char *endpoint);

//  Watch a client socket's handshakes, to say why a broker does not
//  answer (a CURVE broker and a plaintext client, a wrong key).
typedef struct dp_curve_watch dp_curve_watch_t;
//  `ctx` is the socket's context (NULL: CZMQ's).
dp_curve_watch_t *dp_curve_watch_new (void *ctx, void *socket);
//  The last handshake failure since the previous call, in words, or NULL.
const char *dp_curve_watch_why (dp_curve_watch_t *self, bool curve_on);
void dp_curve_watch_destroy (dp_curve_watch_t **self_p);

#endif
