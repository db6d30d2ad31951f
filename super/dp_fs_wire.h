/*  =========================================================================
    dp_fs_wire - the fork server's datagrams, between the server and the
    host's end (dp_forkserver.c) and the supervisors' channels
    (dp_fschannel.c); private to super/

    Messages are single SOCK_SEQPACKET datagrams between parts of one
    program, still checked before use. A descriptor rides along with
    SCM_RIGHTS.
    =========================================================================
*/
#ifndef DP_FS_WIRE_H_INCLUDED
#define DP_FS_WIRE_H_INCLUDED

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define DP_FS_CONNECT       1u
#define DP_FS_SPAWN         2u
#define DP_FS_CHECK         3u
#define DP_FS_FORKED        4u
#define DP_FS_FAILED        5u
#define DP_FS_STATUS        6u
#define DP_FS_MAX_REQUEST   65536       //  a request: header, args, env
#define DP_FS_MAX_STRINGS   512
#define DP_FS_REPLY_MS      10000       //  a fork answers well within this

typedef struct {
    uint32_t type;
    uint32_t nargs;                 //  then nargs + nenv NUL-terminated strings
    uint32_t nenv;
} dp_fs_request_t;

typedef struct {
    uint32_t type;
    int32_t pid;
    int32_t value;                  //  FAILED: errno; STATUS: wait status
} dp_fs_report_t;

//  Send one datagram, with fd (>= 0) attached. Returns 0 or -1 (errno).
int dp_fs_send (int sock, const void *data, size_t len, int fd);

//  Receive one datagram into buf; *fd gets an attached descriptor (close-
//  on-exec) or -1. Returns its size, 0 at the peer's end, -1 on error
//  (EAGAIN with flags MSG_DONTWAIT), -2 for a datagram cut short (dropped).
ssize_t dp_fs_recv (int sock, void *buf, size_t cap, int *fd, int flags);

//  Monotonic ms.
int64_t dp_fs_now_ms (void);

//  The host's end (dp_forkserver.c): send CONNECT with a channel's end
//  (0, -1 with errno, -2: not running); the server's end was seen.
int dp_fs_host_connect (int fd);
void dp_fs_host_lost (void);

#endif
