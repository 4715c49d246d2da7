/* ttrpc frames and the few protobuf messages of the relay's calls (ttrpc.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ttrpc.h"

#define SERVICE "containerd.task.v2.Task"

/* Protobuf wire types (the ones a decoder can skip without a schema). */
#define WIRE_VARINT 0
#define WIRE_FIXED64 1
#define WIRE_LEN 2
#define WIRE_FIXED32 5

static int malformed(crn_error *err, const char *what)
{
    crn_error_set(err, EBADMSG, "ttrpc: malformed ", NULL);
    strncat(err->msg, what, sizeof(err->msg) - strlen(err->msg) - 1);
    return -1;
}

/* ---- protobuf: decoding ------------------------------------------------------- */

struct pb_in {
    const uint8_t *p, *end;
};

struct pb_field {
    uint32_t number;
    unsigned wire;
    uint64_t varint;              /* WIRE_VARINT */
    const uint8_t *data;          /* WIRE_LEN, WIRE_FIXED*: the bytes, inside the input */
    size_t len;
};

static int pb_varint(struct pb_in *in, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (in->p >= in->end)
            return -1;
        uint8_t b = *in->p++;
        /* the 10th byte may only hold the top bit of a 64-bit value */
        if (shift == 63 && b > 1)
            return -1;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

/* The next field: 1, 0 at the end of the input, -1 when malformed. */
static int pb_next(struct pb_in *in, struct pb_field *f)
{
    uint64_t key, len;
    size_t left;

    if (in->p == in->end)
        return 0;
    if (pb_varint(in, &key) < 0)
        return -1;
    if ((key >> 3) == 0 || (key >> 3) > 0x1fffffff)
        return -1;
    f->number = (uint32_t)(key >> 3);
    f->wire = (unsigned)(key & 7);
    f->data = NULL;
    f->len = 0;
    switch (f->wire) {
    case WIRE_VARINT:
        return pb_varint(in, &f->varint) < 0 ? -1 : 1;
    case WIRE_FIXED64:
        len = 8;
        break;
    case WIRE_FIXED32:
        len = 4;
        break;
    case WIRE_LEN:
        if (pb_varint(in, &len) < 0)
            return -1;
        break;
    default:        /* groups (3, 4) are not in these messages; 6, 7 do not exist */
        return -1;
    }
    left = (size_t)(in->end - in->p);
    if (len > left)
        return -1;
    f->data = in->p;
    f->len = (size_t)len;
    in->p += len;
    return 1;
}

/* Walks a message without a schema: only that it parses. */
static int pb_check(const uint8_t *data, size_t len)
{
    struct pb_in in = {data, data + len};
    struct pb_field f;
    int r;
    while ((r = pb_next(&in, &f)) > 0)
        ;
    return r;
}

/* ---- protobuf: encoding --------------------------------------------------------- */

struct pb_out {
    uint8_t *p;
    size_t len, cap;
    int full;
};

static void pb_put(struct pb_out *o, const void *data, size_t len)
{
    if (o->full || len > o->cap - o->len) {
        o->full = 1;
        return;
    }
    memcpy(o->p + o->len, data, len);
    o->len += len;
}

static void pb_put_varint(struct pb_out *o, uint64_t v)
{
    uint8_t b[10];
    size_t n = 0;
    do {
        b[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            b[n] |= 0x80;
        n++;
    } while (v);
    pb_put(o, b, n);
}

/* A length-delimited field; left out when empty, as proto3 does. */
static void pb_put_bytes(struct pb_out *o, uint32_t number, const void *data, size_t len)
{
    if (len == 0)
        return;
    pb_put_varint(o, ((uint64_t)number << 3) | WIRE_LEN);
    pb_put_varint(o, len);
    pb_put(o, data, len);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The request frame for Task/<method> whose message the caller put in
 * `msg`, into buf.  The message goes at the end of buf first, then the
 * envelope (which embeds a copy of it) after the header. */
typedef void (*put_message_fn)(struct pb_out *msg, const void *ctx);

static int task_request(uint8_t *buf, size_t cap, uint32_t stream_id, const char *method,
                        put_message_fn put, const void *ctx, crn_error *err)
{
    struct pb_out msg, req;
    char what[64];

    snprintf(what, sizeof(what), "ttrpc: %s request too large", method);
    if (cap < CRN_TTRPC_HEADER_LEN)
        return crn_error_set(err, EMSGSIZE, what, NULL);
    size_t room = (cap - CRN_TTRPC_HEADER_LEN) / 2;
    msg = (struct pb_out){buf + CRN_TTRPC_HEADER_LEN + room, 0, room, 0};
    put(&msg, ctx);
    req = (struct pb_out){buf + CRN_TTRPC_HEADER_LEN, 0, room, 0};
    pb_put_bytes(&req, 1, SERVICE, sizeof(SERVICE) - 1);              /* service */
    pb_put_bytes(&req, 2, method, strlen(method));                    /* method */
    /* payload (3); timeout_nano (4) and metadata (5) stay unset, as the
     * Python client sends them for a call without a timeout (a Wait lasts
     * as long as the task). */
    if (!msg.full)
        pb_put_bytes(&req, 3, msg.p, msg.len);
    if (msg.full || req.full || req.len > CRN_TTRPC_MESSAGE_MAX)
        return crn_error_set(err, EMSGSIZE, what, NULL);
    put_be32(buf, (uint32_t)req.len);
    put_be32(buf + 4, stream_id);
    buf[8] = CRN_TTRPC_TYPE_REQUEST;
    buf[9] = 0;
    return (int)(CRN_TTRPC_HEADER_LEN + req.len);
}

struct ids {
    const char *task_id, *exec_id;
};

static void put_wait_request(struct pb_out *msg, const void *ctx)
{
    const struct ids *ids = ctx;
    pb_put_bytes(msg, 1, ids->task_id, strlen(ids->task_id));         /* id */
    pb_put_bytes(msg, 2, ids->exec_id, strlen(ids->exec_id));         /* exec_id */
}

int crn_ttrpc_wait_request(uint8_t *buf, size_t cap, uint32_t stream_id, const char *task_id,
                           const char *exec_id, crn_error *err)
{
    struct ids ids = {task_id, exec_id};
    return task_request(buf, cap, stream_id, "Wait", put_wait_request, &ids, err);
}

static void put_close_stdin_request(struct pb_out *msg, const void *ctx)
{
    const struct ids *ids = ctx;
    pb_put_bytes(msg, 1, ids->task_id, strlen(ids->task_id));         /* id */
    pb_put_bytes(msg, 2, ids->exec_id, strlen(ids->exec_id));         /* exec_id */
    pb_put_varint(msg, (3u << 3) | WIRE_VARINT);                      /* stdin = true */
    pb_put_varint(msg, 1);
}

int crn_ttrpc_close_stdin_request(uint8_t *buf, size_t cap, uint32_t stream_id,
                                  const char *task_id, crn_error *err)
{
    struct ids ids = {task_id, ""};
    return task_request(buf, cap, stream_id, "CloseIO", put_close_stdin_request, &ids, err);
}

/* ---- frames --------------------------------------------------------------------- */

void crn_ttrpc_reader_init(struct crn_ttrpc_reader *r, uint32_t stream_id)
{
    r->stream_id = stream_id;
    r->head_got = 0;
    r->body_len = r->body_got = 0;
    r->keep = 0;
}

static int read_some(int fd, uint8_t *buf, size_t len, crn_error *err)
{
    ssize_t n;
    do
        n = read(fd, buf, len);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    if (n < 0) {
        int e = errno;
        crn_error_set(err, e, "read: ", NULL);
        strncat(err->msg, strerror(e), sizeof(err->msg) - strlen(err->msg) - 1);
        return -1;
    }
    if (n == 0)
        return crn_error_set(err, ECONNRESET, "closed by the shim", NULL);
    return (int)n;
}

static int start_body(struct crn_ttrpc_reader *r, crn_error *err)
{
    uint32_t len = get_be32(r->head), stream = get_be32(r->head + 4);

    if (len > CRN_TTRPC_MESSAGE_MAX) {
        crn_error_set(err, EMSGSIZE, NULL, NULL);
        snprintf(err->msg, sizeof(err->msg), "ttrpc: frame of %u bytes exceeds the %u-byte "
                 "limit", len, CRN_TTRPC_MESSAGE_MAX);
        return -1;
    }
    r->keep = r->head[8] == CRN_TTRPC_TYPE_RESPONSE && stream == r->stream_id;
    if (r->keep && len > CRN_TTRPC_ANSWER_MAX) {
        crn_error_set(err, EMSGSIZE, NULL, NULL);
        snprintf(err->msg, sizeof(err->msg), "ttrpc: a Wait response of %u bytes (more "
                 "than %u)", len, CRN_TTRPC_ANSWER_MAX);
        return -1;
    }
    r->body_len = len;
    r->body_got = 0;
    return 0;
}

int crn_ttrpc_read(int fd, struct crn_ttrpc_reader *r, crn_error *err)
{
    for (;;) {
        int n;
        if (r->head_got < CRN_TTRPC_HEADER_LEN) {
            n = read_some(fd, r->head + r->head_got, CRN_TTRPC_HEADER_LEN - r->head_got, err);
            if (n <= 0)
                return n;
            r->head_got += (size_t)n;
            if (r->head_got < CRN_TTRPC_HEADER_LEN)
                continue;
            if (start_body(r, err) < 0)
                return -1;
        }
        if (r->body_got < r->body_len) {
            /* a frame that is not ours is read into the same buffer and dropped */
            uint32_t want = r->body_len - r->body_got;
            uint8_t *dst = r->body + (r->keep ? r->body_got : 0);
            if (!r->keep && want > sizeof(r->body))
                want = sizeof(r->body);
            n = read_some(fd, dst, want, err);
            if (n <= 0)
                return n;
            r->body_got += (uint32_t)n;
            if (r->body_got < r->body_len)
                continue;
        }
        if (r->keep)
            return 1;
        r->head_got = 0;      /* skipped: on to the next frame */
    }
}

/* ---- messages ------------------------------------------------------------------- */

static void copy_message(char *dst, size_t cap, const uint8_t *src, size_t len)
{
    size_t n = len < cap - 1 ? len : cap - 1;
    for (size_t i = 0; i < n; i++)
        dst[i] = (src[i] < 0x20 || src[i] == 0x7f) ? '?' : (char)src[i];
    dst[n] = '\0';
}

/* google.rpc.Status: code (1), message (2), details (3, Any). */
static int status_decode(const uint8_t *data, size_t len, struct crn_ttrpc_answer *out)
{
    struct pb_in in = {data, data + len};
    struct pb_field f;
    int r;
    while ((r = pb_next(&in, &f)) > 0) {
        if (f.number == 1 && f.wire == WIRE_VARINT)
            out->code = (int32_t)(uint32_t)f.varint;      /* int32: the low 32 bits */
        else if (f.number == 2 && f.wire == WIRE_LEN)
            copy_message(out->message, sizeof(out->message), f.data, f.len);
        else if (f.number == 3 && f.wire == WIRE_LEN && pb_check(f.data, f.len) < 0)
            return -1;
    }
    return r;
}

int crn_ttrpc_answer_decode(const uint8_t *data, size_t len, struct crn_ttrpc_answer *out,
                            crn_error *err)
{
    struct pb_in in = {data, data + len};
    struct pb_field f;
    int r;

    memset(out, 0, sizeof(*out));
    while ((r = pb_next(&in, &f)) > 0) {
        /* a field with another wire type than its own is an unknown one,
         * as protobuf's own decoders take it; a message field seen twice
         * merges, a bytes field's last value wins */
        if (f.number == 1 && f.wire == WIRE_LEN) {
            if (status_decode(f.data, f.len, out) < 0)
                return malformed(err, "google.rpc.Status in the response");
        } else if (f.number == 2 && f.wire == WIRE_LEN) {
            out->payload = f.data;
            out->payload_len = f.len;
        }
    }
    if (r < 0)
        return malformed(err, "ttrpc.Response");
    return 0;
}

int crn_ttrpc_receive(int fd, struct crn_ttrpc_reader *r, struct crn_ttrpc_answer *out,
                      crn_error *err)
{
    int got = crn_ttrpc_read(fd, r, err);

    if (got <= 0)
        return got;
    if (crn_ttrpc_answer_decode(r->body, r->body_len, out, err) < 0)
        return -1;
    return 1;
}

int crn_ttrpc_wait_response_decode(const uint8_t *data, size_t len, uint32_t *exit_status,
                                   crn_error *err)
{
    struct pb_in in = {data, data + len};
    struct pb_field f;
    int r;

    *exit_status = 0;
    while ((r = pb_next(&in, &f)) > 0) {
        if (f.number == 1 && f.wire == WIRE_VARINT)
            *exit_status = (uint32_t)f.varint;          /* uint32: the low 32 bits */
        else if (f.number == 2 && f.wire == WIRE_LEN && pb_check(f.data, f.len) < 0)
            return malformed(err, "WaitResponse.exited_at");
    }
    if (r < 0)
        return malformed(err, "WaitResponse");
    return 0;
}
