/* Wire format of the monitor's attach socket, <state-dir>/attach.
 *
 * The socket is AF_UNIX SOCK_SEQPACKET, so the kernel keeps message
 * boundaries and no length prefix is needed: every packet is one message,
 * byte 0 is its type and the rest is its payload.  Integers are big-endian.
 * crio_native/monitor/protocol.py mirrors these values; a unit test checks
 * that the two agree. */
#ifndef CRN_MONITOR_PROTOCOL_H
#define CRN_MONITOR_PROTOCOL_H

#define CRN_ATTACH_SOCKET_NAME "attach"

/* The largest packet either side sends, type byte included. */
#define CRN_MSG_MAX 32768

/* client -> monitor */
#define CRN_MSG_ATTACH       0x01 /* u8 flags: subscribe to output; replies */
#define CRN_MSG_STDIN        0x02 /* bytes for the container's stdin; no reply */
#define CRN_MSG_CLOSE_STDIN  0x03 /* EOF on stdin (^D on a terminal); replies */
#define CRN_MSG_RESIZE       0x04 /* u16 rows, u16 cols; replies */
#define CRN_MSG_REOPEN_LOG   0x05 /* reopen the CRI log path; replies */

/* monitor -> client */
#define CRN_MSG_STDOUT       0x81 /* bytes the container wrote to stdout (or its tty) */
#define CRN_MSG_STDERR       0x82 /* bytes the container wrote to stderr */
#define CRN_MSG_EXIT         0x83 /* i32 exit code (128+signal if killed); last packet */
#define CRN_MSG_REPLY        0x84 /* u8 request type, i32 errno (0 = done) */

/* CRN_MSG_ATTACH flags */
#define CRN_ATTACH_STDOUT    0x01
#define CRN_ATTACH_STDERR    0x02
/* This client owns stdin: with --stdin-once, its leaving closes stdin. */
#define CRN_ATTACH_STDIN     0x04

#endif
