/* Just enough of ttrpc (github.com/containerd/ttrpc) and protobuf to make
 * the relay's two unary calls, containerd.task.v2.Task/Wait and CloseIO
 * (of stdin), and read their answers.
 *
 * Frame: u32 BE data length, u32 BE stream id, u8 type (1 request, 2
 * response), u8 flags, then the data: a ttrpc.Request or ttrpc.Response
 * (proto/shim/ttrpc.proto) carrying the method's own message
 * (proto/shim/v2/task.proto: WaitRequest, WaitResponse, CloseIORequest;
 * CloseIO answers google.protobuf.Empty).  The Python client
 * (crio_native/runtime/shim/ttrpc.py) is the reference.
 *
 * Decoding never trusts the peer: every length is checked against what is
 * left, varints stop at 10 bytes, and anything that does not parse is
 * EBADMSG (a frame over the limit EMSGSIZE), never a read out of bounds. */
#ifndef CRN_SHIMRELAY_TTRPC_H
#define CRN_SHIMRELAY_TTRPC_H

#include <stddef.h>
#include <stdint.h>

#include "../error.h"

#define CRN_TTRPC_HEADER_LEN 10
#define CRN_TTRPC_MESSAGE_MAX (4u << 20)   /* the protocol's limit per frame */
#define CRN_TTRPC_ANSWER_MAX (64u << 10)   /* kept of our answer: a Wait's is ~30 bytes */
#define CRN_TTRPC_TYPE_REQUEST 1
#define CRN_TTRPC_TYPE_RESPONSE 2

/* google.rpc.Code values the relay tells apart. */
#define CRN_RPC_OK 0
#define CRN_RPC_NOT_FOUND 5
#define CRN_RPC_UNAVAILABLE 14

#define CRN_TTRPC_STATUS_MSG_MAX 256

/* The answer to one call, decoded. */
struct crn_ttrpc_answer {
    int32_t code;                         /* google.rpc.Status.code; 0 without a status */
    char message[CRN_TTRPC_STATUS_MSG_MAX]; /* its message, cut and made printable */
    const uint8_t *payload;               /* the method's response message (points into the frame) */
    size_t payload_len;
};

/* Reads frames off a nonblocking stream socket as they come, keeping the
 * data of the one response frame on `stream_id` and skipping the rest
 * (other types and streams, as the Python client ignores them). */
struct crn_ttrpc_reader {
    uint32_t stream_id;
    uint8_t head[CRN_TTRPC_HEADER_LEN];
    size_t head_got;
    uint32_t body_len, body_got;
    int keep;                             /* this frame is our answer */
    uint8_t body[CRN_TTRPC_ANSWER_MAX];
};

/* The whole Request frame for Task/Wait(id, exec_id) on `stream_id` into
 * buf; its length, or -1 (EMSGSIZE) when it does not fit in `cap`. */
int crn_ttrpc_wait_request(uint8_t *buf, size_t cap, uint32_t stream_id, const char *task_id,
                           const char *exec_id, crn_error *err);

/* The same for Task/CloseIO(id, stdin=true): the end of the task's stdin. */
int crn_ttrpc_close_stdin_request(uint8_t *buf, size_t cap, uint32_t stream_id,
                                  const char *task_id, crn_error *err);

void crn_ttrpc_reader_init(struct crn_ttrpc_reader *r, uint32_t stream_id);

/* Reads what the socket has.  1: our response frame is complete (r->body,
 * r->body_len); 0: more to come (EAGAIN); -1: the peer closed or a read
 * failed (errno of it, ECONNRESET for a close), or the stream is not ttrpc
 * (EMSGSIZE, EBADMSG). */
int crn_ttrpc_read(int fd, struct crn_ttrpc_reader *r, crn_error *err);

/* Decodes a ttrpc.Response.  -1 (EBADMSG) when it is malformed. */
int crn_ttrpc_answer_decode(const uint8_t *data, size_t len, struct crn_ttrpc_answer *out,
                            crn_error *err);

/* crn_ttrpc_read, and once our response frame is complete its decoded
 * answer: 1 with `out` filled, 0 while more is to come, -1 as
 * crn_ttrpc_read fails or (EBADMSG) for a malformed answer. */
int crn_ttrpc_receive(int fd, struct crn_ttrpc_reader *r, struct crn_ttrpc_answer *out,
                      crn_error *err);

/* WaitResponse.exit_status.  -1 (EBADMSG) when malformed. */
int crn_ttrpc_wait_response_decode(const uint8_t *data, size_t len, uint32_t *exit_status,
                                   crn_error *err);

#endif
