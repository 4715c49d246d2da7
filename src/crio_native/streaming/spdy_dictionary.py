"""The SPDY/3 header-compression dictionary (draft 3, section 2.6.10.1).

Both zlib contexts of a SPDY/3 session (ours for sending, the peer's for
receiving) start from this preset dictionary; a single wrong byte changes its
Adler-32 id and the peer's inflater refuses the very first header block.

The spec prints it as a C array of 1423 bytes.  Its first part is a run of
name/value-block style strings (a 32-bit big-endian length, then the bytes)
and its second part is raw text (status lines, dates, MIME types), so it is
spelled here in that shape rather than as a hex dump; the unit tests pin its
length and a few spec bytes.
"""

from __future__ import annotations

import struct

# Each of these is stored as <uint32 length><bytes>, in the spec's order.
_LENGTH_PREFIXED = (
    "options", "head", "post", "put", "delete", "trace",
    "accept", "accept-charset", "accept-encoding", "accept-language",
    "accept-ranges", "age", "allow", "authorization", "cache-control",
    "connection", "content-base", "content-encoding", "content-language",
    "content-length", "content-location", "content-md5", "content-range",
    "content-type", "date", "etag", "expect", "expires", "from", "host",
    "if-match", "if-modified-since", "if-none-match", "if-range",
    "if-unmodified-since", "last-modified", "location", "max-forwards",
    "pragma", "proxy-authenticate", "proxy-authorization", "range",
    "referer", "retry-after", "server", "te", "trailer",
    "transfer-encoding", "upgrade", "user-agent", "vary", "via", "warning",
    "www-authenticate", "method", "get", "status", "200 OK", "version",
    "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin",
)

# Followed directly (no length prefixes) by this text.
_RAW_TAIL = (
    "100101201202205206300302303304305306307"
    "402405406407408409410411412413414415416417"
    "502504505"
    "203 Non-Authoritative Information"
    "204 No Content"
    "301 Moved Permanently"
    "400 Bad Request"
    "401 Unauthorized"
    "403 Forbidden"
    "404 Not Found"
    "500 Internal Server Error"
    "501 Not Implemented"
    "503 Service Unavailable"
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec"
    " 00:00:00"
    " Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
    "chunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,"
    "publicprivatemax-age=gzip,deflate,sdch"
    "charset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)


def _build() -> bytes:
    parts = []
    for word in _LENGTH_PREFIXED:
        raw = word.encode("ascii")
        parts.append(struct.pack("!I", len(raw)) + raw)
    parts.append(_RAW_TAIL.encode("ascii"))
    return b"".join(parts)


SPDY3_DICTIONARY: bytes = _build()

assert len(SPDY3_DICTIONARY) == 1423, len(SPDY3_DICTIONARY)
