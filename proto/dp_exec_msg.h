/*  =========================================================================
    dp_exec_msg - codec of the built-in `exec` task's item and reply

    An exec item and its reply are msgpack maps with string keys (the data
    of one BATCH / RESULTS item; PROTOCOL.md §10):

        item    "argv"  array of str   the command, run directly     } exactly
                "sh"    str            a shell command line          } one
                "shell" str            shell for "sh" (`shell -c`); default /bin/sh
                "cwd"   str            directory to run in, if it exists on the node
                "env"   map str->str   variables set in the command's environment
                "stdin" bin            fed to stdin (absent: /dev/null)
                "timeout" float64      seconds; 0 or absent = none
                "seq"   uint           exported as PARALLEL_SEQ
                "slot"  uint           exported as PARALLEL_JOBSLOT
                "slotat" array of uint the job slot is the worker's own (its
                                       $DPOOL_SLOT: its place 1..N among its
                                       supervisor's processes, else "slot"),
                                       written in decimal into "sh" at each of
                                       these byte offsets (ascending, <= its
                                       length; at most DP_EXEC_MAX_SLOTAT)
                "flush" bool           stream the output in PARTs as it is read,
                                       not only once DP_EXEC_PART bytes are
                                       buffered (where the client takes PARTs;
                                       `dpool run -u` / `--line-buffer`)
                "nice"  int            -20..19: run the command under `nice -n`
                "termseq" array of uint  signals and waits when the command is
                                       killed for its timeout: SIG, MS, SIG,
                                       MS, ... (1..DP_EXEC_MAX_TERMSEQ pairs;
                                       SIG 1..64, MS <= 3600000); absent:
                                       TERM 200 TERM 100 TERM 50 KILL 25
                "slotvar" str          also export this variable holding the
                                       job slot less one (GNU parallel's
                                       --process-slot-var): a name of
                                       letters, digits and '_', not a digit
                                       first, at most 64 bytes

        reply   "status" int           exit status, or 128 + signal
                "signal" int           signal that killed it, 0 if none
                "timedout" bool        killed for its timeout
                "out"   bin            stdout
                "err"   bin            stderr
                "start" float64        epoch seconds when it started
                "runtime" float64      seconds it ran
                "host"  str            gethostname of the node
                "slot"  uint           the job slot it ran in (PARALLEL_JOBSLOT), 0: none
                "node"  uint           tag of the node that ran it (dp_node_tag of
                                       its $DPOOL_NODE; absent or 0: unknown)
                "parts" uint           PARTs of this item's output streamed
                                       before the reply (absent: 0); "out"
                                       and "err" then hold only the rest

    Decoders take untrusted bytes: they check the msgpack first
    (dp_proto_check_map), then every type; they never assert and fail with
    a reason. Unknown keys are ignored (room for later fields); a key given
    twice is an error. Strings may not hold NUL bytes; env names are
    non-empty and hold no '='.
    =========================================================================
*/
#ifndef DP_EXEC_MSG_H_INCLUDED
#define DP_EXEC_MSG_H_INCLUDED

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Most bytes of stdout + stderr the exec task returns in one reply: a
//  command that writes more is killed and its item fails with a message,
//  unless its client takes PARTs (JOB.parts): the output then streams in
//  PARTs of DP_EXEC_PART bytes ahead of the reply, with no limit.
#define DP_EXEC_MAX_OUTPUT  (128u << 20)
//  Most offsets in an item's "slotat"
#define DP_EXEC_MAX_SLOTAT  1024
#define DP_EXEC_MAX_TERMSEQ 16          //  "termseq" pairs at most
#define DP_EXEC_PART        (1u << 20)

//  An exec item. Decoded items own every pointer (malloc'd, freed by
//  dp_exec_item_destroy); to encode, fill it with your own pointers.
typedef struct {
    char **argv;                //  NULL-terminated, or NULL when `sh` is set
    char *sh;                   //  shell command line, or NULL
    char *shell;                //  NULL: /bin/sh
    char *cwd;                  //  NULL: the worker's cwd
    char **env;                 //  NULL-terminated "NAME=VALUE", or NULL
    uint8_t *input;             //  "stdin" bytes (has_input: present)
    size_t input_size;
    bool has_input;
    double timeout;             //  seconds, 0 = none
    uint64_t seq;               //  has_seq: present
    bool has_seq;
    uint64_t slot;              //  has_slot: present
    bool has_slot;
    size_t *slot_at;            //  "slotat" offsets into sh (has_slot_at: present)
    size_t nslot_at;
    bool has_slot_at;
    bool flush;                 //  "flush": PARTs as the output comes
    int nice;                   //  "nice": `nice -n` it (0: not)
    char *slotvar;              //  "slotvar": NAME=slot-1 exported too (NULL: none)
    uint32_t termseq [2 * DP_EXEC_MAX_TERMSEQ];    //  "termseq": signal, ms, ...
    size_t ntermseq;            //  pairs (0: the default)
} dp_exec_item_t;

//  An exec reply. Decoded replies own out, err and host.
typedef struct {
    int status;                 //  exit status, or 128 + signal
    int signal;                 //  0 if none
    bool timedout;
    uint8_t *out;               //  stdout
    size_t out_size;
    uint8_t *err;               //  stderr
    size_t err_size;
    double start;               //  epoch seconds
    double runtime;             //  seconds
    char *host;                 //  NULL encodes ""
    uint64_t slot;              //  job slot it ran in, 0: none
    uint64_t node;              //  node tag (dp_node_tag), 0: unknown
    uint64_t parts;             //  PARTs streamed before the reply (0: none)
} dp_exec_reply_t;

//  Is `name` a shell variable name ("slotvar"): letters, digits, '_',
//  not a digit first, 1..64 bytes?
bool dp_exec_var_name_ok (const char *name);

//  Append the item to `buf`. Returns 0, or -1 when the item is not valid
//  (neither or both of argv and sh, an empty argv, an env entry without
//  '=', a negative timeout, a bad slotvar) or memory ran out.
int dp_exec_item_encode (const dp_exec_item_t *self, msgpack_sbuffer *buf);

//  Decode `size` bytes into *self (which is overwritten). Returns 0, or -1
//  with the reason in err and *self holding nothing.
int dp_exec_item_decode (const void *data, size_t size, dp_exec_item_t *self,
                         char *err, size_t errlen);

//  Free what a decoded item owns and zero it. Takes NULL.
void dp_exec_item_destroy (dp_exec_item_t *self);

//  Pack the reply with `pk` / append it to `buf`. Return 0 or -1 (the
//  packer's write failed).
int dp_exec_reply_pack (const dp_exec_reply_t *self, msgpack_packer *pk);
int dp_exec_reply_encode (const dp_exec_reply_t *self, msgpack_sbuffer *buf);

//  Decode a reply; as dp_exec_item_decode. "status" is required.
int dp_exec_reply_decode (const void *data, size_t size, dp_exec_reply_t *self,
                          char *err, size_t errlen);

//  Free what a decoded reply owns and zero it. Takes NULL.
void dp_exec_reply_destroy (dp_exec_reply_t *self);

#ifdef __cplusplus
}
#endif

#endif
