/*  =========================================================================
    dp_report - the REPORT body: encoding and checked decoding (dp_report.h)

    Each kind of row (broker, node, worker, job) is described by one table
    of fields (wire name, type, member), which drives both the encoder and
    the decoder, as the header keys do in dp_proto.c. Keys a table does not
    name are ignored (a later broker may add some); a key twice in one row,
    or a value of the wrong type or range, refuses the whole body.
    =========================================================================
*/
#include "dp_report.h"

#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { F_U32, F_U64, F_I32, F_BOOL, F_STR } s_ftype_t;

typedef struct {
    const char *name;
    uint8_t type;               //  s_ftype_t
    uint16_t offset;
    uint16_t size;
} s_field_t;

#define S_F(row, member, type) { #member, type, offsetof (row, member), \
                                 sizeof (((row *) 0)->member) }

static const s_field_t s_broker_fields [] = {
    S_F (dp_report_broker_t, host, F_STR),
    S_F (dp_report_broker_t, pid, F_U32),
    S_F (dp_report_broker_t, uptime_ms, F_U64),
    S_F (dp_report_broker_t, msgs_in, F_U64),
    S_F (dp_report_broker_t, msgs_out, F_U64),
    S_F (dp_report_broker_t, bytes_in, F_U64),
    S_F (dp_report_broker_t, bytes_out, F_U64),
    S_F (dp_report_broker_t, peers_dropped, F_U64),
    S_F (dp_report_broker_t, bad_messages, F_U64),
    S_F (dp_report_broker_t, items_done, F_U64),
    S_F (dp_report_broker_t, items_failed, F_U64),
    S_F (dp_report_broker_t, clients, F_U32),
    S_F (dp_report_broker_t, metrics_port, F_U32),
    { NULL, 0, 0, 0 }
};

static const s_field_t s_node_fields [] = {
    S_F (dp_report_node_t, host, F_STR),
    S_F (dp_report_node_t, pid, F_U32),
    S_F (dp_report_node_t, local, F_BOOL),
    S_F (dp_report_node_t, slots, F_U32),
    S_F (dp_report_node_t, workers, F_U32),
    S_F (dp_report_node_t, busy, F_U32),
    S_F (dp_report_node_t, done, F_U64),
    S_F (dp_report_node_t, failed, F_U64),
    S_F (dp_report_node_t, restarts, F_U32),
    { NULL, 0, 0, 0 }
};

static const s_field_t s_worker_fields [] = {
    S_F (dp_report_worker_t, host, F_STR),
    S_F (dp_report_worker_t, pid, F_U32),
    S_F (dp_report_worker_t, node, F_I32),
    S_F (dp_report_worker_t, inflight, F_U32),
    S_F (dp_report_worker_t, credit, F_U32),
    S_F (dp_report_worker_t, done, F_U64),
    S_F (dp_report_worker_t, failed, F_U64),
    { NULL, 0, 0, 0 }
};

static const s_field_t s_job_fields [] = {
    S_F (dp_report_job_t, client, F_STR),
    S_F (dp_report_job_t, job, F_U32),
    S_F (dp_report_job_t, task, F_STR),
    S_F (dp_report_job_t, sent, F_U64),
    S_F (dp_report_job_t, total, F_U64),
    S_F (dp_report_job_t, ended, F_BOOL),
    S_F (dp_report_job_t, done, F_U64),
    S_F (dp_report_job_t, failed, F_U64),
    S_F (dp_report_job_t, age_ms, F_U64),
    { NULL, 0, 0, 0 }
};

static int __attribute__ ((format (printf, 4, 5)))
s_fail (char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list args;
        va_start (args, fmt);
        vsnprintf (err, errlen, fmt, args);
        va_end (args);
    }
    return code;
}

void
dp_report_init (dp_report_t *self)
{
    memset (self, 0, sizeof *self);
}

void
dp_report_clear (dp_report_t *self)
{
    free (self->nodes);
    free (self->workers);
    free (self->jobs);
    memset (self, 0, sizeof *self);
}

//  Room for one more row of `size` bytes in *rows (count, cap); a pointer
//  to the new zeroed row, or NULL past DP_REPORT_MAX_ROWS or out of memory.
static void *
s_add_row (dp_report_t *self, void **rows, uint32_t *count, uint32_t *cap, size_t size)
{
    if (*count >= DP_REPORT_MAX_ROWS) {
        self->truncated = true;
        return NULL;
    }
    if (*count == *cap) {
        uint32_t want = *cap ? 2 * *cap : 16;
        void *grown = realloc (*rows, want * size);
        if (!grown) {
            self->truncated = true;
            return NULL;
        }
        *rows = grown;
        *cap = want;
    }
    char *row = (char *) *rows + (size_t) (*count)++ * size;
    memset (row, 0, size);
    return row;
}

dp_report_node_t *
dp_report_add_node (dp_report_t *self)
{
    return (dp_report_node_t *) s_add_row (self, (void **) &self->nodes, &self->nnodes,
                                           &self->cap_nodes, sizeof (dp_report_node_t));
}

dp_report_worker_t *
dp_report_add_worker (dp_report_t *self)
{
    return (dp_report_worker_t *) s_add_row (self, (void **) &self->workers, &self->nworkers,
                                             &self->cap_workers, sizeof (dp_report_worker_t));
}

dp_report_job_t *
dp_report_add_job (dp_report_t *self)
{
    return (dp_report_job_t *) s_add_row (self, (void **) &self->jobs, &self->njobs,
                                          &self->cap_jobs, sizeof (dp_report_job_t));
}


//  ---------------------------------------------------------------------
//  Encoding

//  Pack one row as a map of its table's fields.
static void
s_pack_row (msgpack_packer *pk, const s_field_t *fields, const void *row)
{
    size_t count = 0;
    while (fields [count].name)
        count++;
    msgpack_pack_map (pk, count);
    for (const s_field_t *f = fields; f->name; f++) {
        const char *at = (const char *) row + f->offset;
        msgpack_pack_str_with_body (pk, f->name, strlen (f->name));
        uint32_t v32;
        uint64_t v64;
        int32_t i32;
        bool flag;
        switch (f->type) {
            case F_U32: memcpy (&v32, at, 4); msgpack_pack_uint32 (pk, v32); break;
            case F_U64: memcpy (&v64, at, 8); msgpack_pack_uint64 (pk, v64); break;
            case F_I32: memcpy (&i32, at, 4); msgpack_pack_int32 (pk, i32); break;
            case F_BOOL:
                memcpy (&flag, at, sizeof flag);
                if (flag) msgpack_pack_true (pk); else msgpack_pack_false (pk);
                break;
            case F_STR:
                msgpack_pack_str_with_body (pk, at, strnlen (at, f->size - 1));
                break;
        }
    }
}

static void
s_pack_rows (msgpack_packer *pk, const char *key, const s_field_t *fields,
             const void *rows, uint32_t count, size_t size)
{
    msgpack_pack_str_with_body (pk, key, strlen (key));
    msgpack_pack_array (pk, count);
    for (uint32_t i = 0; i < count; i++)
        s_pack_row (pk, fields, (const char *) rows + i * size);
}

static void
s_free_buffer (void *data, void *hint)
{
    (void) hint;
    free (data);
}

//  Pack the report with its first nworkers workers and njobs jobs into a
//  new buffer. Returns 0, or -1 when out of memory (buffer then empty).
static int
s_pack_body (const dp_report_t *self, uint32_t nworkers, uint32_t njobs, bool truncated,
             msgpack_sbuffer *buffer)
{
    msgpack_sbuffer_init (buffer);
    msgpack_packer pk;
    msgpack_packer_init (&pk, buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 5);
    msgpack_pack_str_with_body (&pk, "broker", 6);
    s_pack_row (&pk, s_broker_fields, &self->broker);
    s_pack_rows (&pk, "nodes", s_node_fields, self->nodes, self->nnodes, sizeof (dp_report_node_t));
    s_pack_rows (&pk, "workers", s_worker_fields, self->workers, nworkers,
                 sizeof (dp_report_worker_t));
    s_pack_rows (&pk, "jobs", s_job_fields, self->jobs, njobs, sizeof (dp_report_job_t));
    msgpack_pack_str_with_body (&pk, "truncated", 9);
    if (truncated) msgpack_pack_true (&pk); else msgpack_pack_false (&pk);
    if (!buffer->data) {
        msgpack_sbuffer_destroy (buffer);
        return -1;
    }
    return 0;
}

//  Rows are at most DP_REPORT_MAX_ROWS of each kind, but full rows with
//  long names do not fit DP_MAX_REPORT (4096 of each take about 3.3 MB):
//  then workers and jobs are left out, the longer list halved until the
//  body fits, and the report says it is truncated. Nodes are all kept
//  (workers name them by index; 4096 of them take under 1 MB).
int
dp_report_encode (const dp_report_t *self, dp_msg_t *msg)
{
    if (msg->nframes != 0)
        return -1;
    uint32_t nworkers = self->nworkers, njobs = self->njobs;
    bool truncated = self->truncated;
    msgpack_sbuffer buffer;
    while (true) {
        if (s_pack_body (self, nworkers, njobs, truncated, &buffer))
            return -1;
        if (buffer.size <= DP_MAX_REPORT)
            break;
        msgpack_sbuffer_destroy (&buffer);
        if (nworkers == 0 && njobs == 0)
            return -1;
        if (njobs >= nworkers)
            njobs /= 2;
        else
            nworkers /= 2;
        truncated = true;
    }
    size_t size = buffer.size;
    char *data = msgpack_sbuffer_release (&buffer);
    if (zmq_msg_init_data (&msg->frame [0], data, size, s_free_buffer, NULL)) {
        free (data);
        return -1;
    }
    msg->nframes = 1;
    return 0;
}


//  ---------------------------------------------------------------------
//  Decoding

//  Store one value into its member, checking type and range.
static int
s_get_value (const s_field_t *f, void *row, const msgpack_object *v, const char *what,
             char *err, size_t errlen)
{
    char *at = (char *) row + f->offset;
    bool positive = v->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
    bool negative = v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
    switch (f->type) {
        case F_STR:
            if (v->type != MSGPACK_OBJECT_STR || v->via.str.size > (uint32_t) f->size - 1
            ||  memchr (v->via.str.ptr, 0, v->via.str.size))
                break;
            memcpy (at, v->via.str.ptr, v->via.str.size);
            at [v->via.str.size] = 0;
            return 0;
        case F_BOOL:
            if (v->type != MSGPACK_OBJECT_BOOLEAN)
                break;
            memcpy (at, &v->via.boolean, sizeof (bool));
            return 0;
        case F_U32:
            if (!positive || v->via.u64 > UINT32_MAX)
                break;
            uint32_t v32 = (uint32_t) v->via.u64;
            memcpy (at, &v32, 4);
            return 0;
        case F_U64:
            if (!positive)
                break;
            memcpy (at, &v->via.u64, 8);
            return 0;
        case F_I32:
            if ((positive && v->via.u64 > INT32_MAX) || (negative && v->via.i64 < INT32_MIN)
            ||  (!positive && !negative))
                break;
            int32_t i32 = positive ? (int32_t) v->via.u64 : (int32_t) v->via.i64;
            memcpy (at, &i32, 4);
            return 0;
    }
    return s_fail (err, errlen, DP_PROTO_EPAYLOAD, "REPORT: %s '%s' has the wrong type or range",
                   what, f->name);
}

//  Fill one row from a map, by its table.
static int
s_get_row (const s_field_t *fields, void *row, const msgpack_object *obj, const char *what,
           char *err, size_t errlen)
{
    if (obj->type != MSGPACK_OBJECT_MAP)
        return s_fail (err, errlen, DP_PROTO_EPAYLOAD, "REPORT: a %s is not a map", what);
    uint32_t seen = 0;
    for (uint32_t i = 0; i < obj->via.map.size; i++) {
        const msgpack_object *key = &obj->via.map.ptr [i].key;
        if (key->type != MSGPACK_OBJECT_STR)
            return s_fail (err, errlen, DP_PROTO_EPAYLOAD, "REPORT: a %s key is not a string", what);
        for (int f = 0; fields [f].name; f++) {
            if (strlen (fields [f].name) != key->via.str.size
            ||  memcmp (fields [f].name, key->via.str.ptr, key->via.str.size))
                continue;
            if (seen & (1u << f))
                return s_fail (err, errlen, DP_PROTO_EPAYLOAD, "REPORT: %s '%s' twice",
                               what, fields [f].name);
            seen |= 1u << f;
            int rc = s_get_value (&fields [f], row, &obj->via.map.ptr [i].val, what, err, errlen);
            if (rc)
                return rc;
        }
    }
    return 0;
}

//  Fill rows from an array of maps, appending with `add`.
static int
s_get_rows (dp_report_t *self, const msgpack_object *obj, const char *what,
            const s_field_t *fields, void *(*add) (dp_report_t *), char *err, size_t errlen)
{
    if (obj->type != MSGPACK_OBJECT_ARRAY)
        return s_fail (err, errlen, DP_PROTO_EPAYLOAD, "REPORT: '%ss' is not an array", what);
    if (obj->via.array.size > DP_REPORT_MAX_ROWS)
        return s_fail (err, errlen, DP_PROTO_ELIMIT, "REPORT: more than %d %ss",
                       DP_REPORT_MAX_ROWS, what);
    for (uint32_t i = 0; i < obj->via.array.size; i++) {
        void *row = add (self);
        if (!row)
            return s_fail (err, errlen, DP_PROTO_ELIMIT, "REPORT: out of memory");
        int rc = s_get_row (fields, row, &obj->via.array.ptr [i], what, err, errlen);
        if (rc)
            return rc;
    }
    return 0;
}

static void *s_add_node (dp_report_t *self) { return dp_report_add_node (self); }
static void *s_add_worker (dp_report_t *self) { return dp_report_add_worker (self); }
static void *s_add_job (dp_report_t *self) { return dp_report_add_job (self); }

//  Walk the body map: each part at most once, unknown keys ignored.
static int
s_get_body (dp_report_t *self, const msgpack_object *obj, char *err, size_t errlen)
{
    if (obj->type != MSGPACK_OBJECT_MAP)
        return s_fail (err, errlen, DP_PROTO_EPAYLOAD, "REPORT: body is not a map");
    static const char *const parts [] = { "broker", "nodes", "workers", "jobs", "truncated" };
    uint32_t seen = 0;
    for (uint32_t i = 0; i < obj->via.map.size; i++) {
        const msgpack_object *key = &obj->via.map.ptr [i].key;
        const msgpack_object *val = &obj->via.map.ptr [i].val;
        if (key->type != MSGPACK_OBJECT_STR)
            return s_fail (err, errlen, DP_PROTO_EPAYLOAD, "REPORT: a key is not a string");
        int part = -1;
        for (int p = 0; p < 5; p++)
            if (strlen (parts [p]) == key->via.str.size
            &&  memcmp (parts [p], key->via.str.ptr, key->via.str.size) == 0)
                part = p;
        if (part < 0)
            continue;
        if (seen & (1u << part))
            return s_fail (err, errlen, DP_PROTO_EPAYLOAD, "REPORT: '%s' twice", parts [part]);
        seen |= 1u << part;
        int rc = 0;
        switch (part) {
            case 0: rc = s_get_row (s_broker_fields, &self->broker, val, "broker", err, errlen); break;
            case 1: rc = s_get_rows (self, val, "node", s_node_fields, s_add_node, err, errlen); break;
            case 2: rc = s_get_rows (self, val, "worker", s_worker_fields, s_add_worker, err, errlen); break;
            case 3: rc = s_get_rows (self, val, "job", s_job_fields, s_add_job, err, errlen); break;
            case 4:
                if (val->type != MSGPACK_OBJECT_BOOLEAN)
                    rc = s_fail (err, errlen, DP_PROTO_EPAYLOAD, "REPORT: 'truncated' is not a boolean");
                else
                    self->truncated = val->via.boolean;
                break;
        }
        if (rc)
            return rc;
    }
    for (uint32_t i = 0; i < self->nworkers; i++)
        if (self->workers [i].node < -1 || self->workers [i].node >= (int32_t) self->nnodes)
            return s_fail (err, errlen, DP_PROTO_EPAYLOAD, "REPORT: worker %u names node %d of %u",
                           i, self->workers [i].node, self->nnodes);
    return 0;
}

int
dp_report_decode (dp_report_t *self, dp_msg_t *msg, char *err, size_t errlen)
{
    dp_report_init (self);
    if (msg->cmd != DP_CMD_REPORT || msg->nframes != 1)
        return s_fail (err, errlen, DP_PROTO_EPAYLOAD, "not a REPORT");
    //  The decoder has validated the body (dp_msg_decode): its declared
    //  lengths fit its bytes, so the zone is bounded by its size.
    msgpack_zone *zone = msgpack_zone_new (MSGPACK_ZONE_CHUNK_SIZE);
    if (!zone)
        return s_fail (err, errlen, DP_PROTO_ELIMIT, "REPORT: out of memory");
    msgpack_object obj;
    size_t off = 0;
    int rc;
    if (msgpack_unpack ((const char *) zmq_msg_data (&msg->frame [0]), zmq_msg_size (&msg->frame [0]),
                        &off, zone, &obj) != MSGPACK_UNPACK_SUCCESS)
        rc = s_fail (err, errlen, DP_PROTO_EPAYLOAD, "REPORT: body is not valid msgpack");
    else
        rc = s_get_body (self, &obj, err, errlen);
    msgpack_zone_free (zone);
    if (rc)
        dp_report_clear (self);
    return rc;
}
