"""A request's header block, checked in one pass over h2's raw bytes.

h2's own inbound checks (a chain of generators that looks at every byte of
every name in Python) were a fifth of a small call's cost; the connection
turns them off and runs these instead: the same rules of RFC 9113 8.2-8.3
that h2 applies to a request, on bytes, with compiled patterns.  A request
that breaks one is malformed, a stream error of type PROTOCOL_ERROR (RFC
9113 8.1.1): its stream is reset, the connection and its other calls go on.
Request trailers are never looked at (a gRPC request has none)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

# RFC 9113 8.2.1: no 0x00-0x20, no upper case, no 0x7f-0xff; ':' only as the
# pseudo-header sigil.
_NAME = re.compile(rb":?[\x21-\x39\x3b-\x40\x5b-\x7e]+\Z")
# no NUL, CR or LF anywhere; no SP or HTAB at either end
_BAD_VALUE = re.compile(rb"[\x00\r\n]|\A[ \t]|[ \t]\Z")
# RFC 9113 8.2.2
CONNECTION_SPECIFIC = frozenset({b"connection", b"proxy-connection", b"keep-alive",
                                 b"transfer-encoding", b"upgrade"})
REQUEST_PSEUDO = frozenset({b":method", b":scheme", b":authority", b":path", b":protocol"})


class Malformed(Exception):
    """The header block breaks HTTP/2's rules for a request."""


@dataclass
class RequestHead:
    method: str
    path: str
    headers: list[tuple[str, str]]      # the regular fields, in order, decoded


def request_head(raw: Iterable[tuple[bytes, bytes]]) -> RequestHead:
    """The pseudo-headers and the fields of a request's header block;
    Malformed if HTTP/2 does not allow it."""
    pseudo: dict[bytes, bytes] = {}
    fields: list[tuple[str, str]] = []
    host: bytes | None = None
    for name, value in raw:
        if _NAME.match(name) is None:
            raise Malformed(f"illegal header name {name!r}")
        if value and _BAD_VALUE.search(value) is not None:
            raise Malformed(f"illegal value of header {name!r}")
        if name[0] == 0x3a:     # ':'
            if fields:
                raise Malformed(f"pseudo-header {name!r} after a regular field")
            if name not in REQUEST_PSEUDO:
                raise Malformed(f"pseudo-header {name!r} is not a request's")
            if name in pseudo:
                raise Malformed(f"duplicate pseudo-header {name!r}")
            pseudo[name] = value
            continue
        if name in CONNECTION_SPECIFIC:
            raise Malformed(f"connection-specific header {name!r}")
        if name == b"te" and value.lower() != b"trailers":
            raise Malformed(f"te: {value!r} is not 'trailers'")
        if name == b"host":
            if host is not None:
                raise Malformed("more than one host header")
            host = value
        fields.append((name.decode("ascii"), value.decode("utf-8", errors="replace")))
    _check_pseudo(pseudo, host)
    return RequestHead(pseudo[b":method"].decode("ascii", errors="replace"),
                       pseudo.get(b":path", b"").decode("utf-8", errors="replace"), fields)


def _check_pseudo(pseudo: dict[bytes, bytes], host: bytes | None) -> None:
    method = pseudo.get(b":method")
    if method is None:
        raise Malformed("no :method")
    if method == b"CONNECT" and b":protocol" not in pseudo:
        if b":scheme" in pseudo or b":path" in pseudo:
            raise Malformed("a CONNECT request with :scheme or :path")
    else:
        if method != b"CONNECT" and b":protocol" in pseudo:
            raise Malformed(":protocol outside a CONNECT request")
        if b":scheme" not in pseudo:
            raise Malformed("no :scheme")
        if not pseudo.get(b":path"):
            raise Malformed("no :path or an empty one")
    authority = pseudo.get(b":authority")
    if authority is None and host is None:
        raise Malformed("neither :authority nor host")
    if authority is not None and host is not None and authority != host:
        raise Malformed(f":authority {authority!r} and host {host!r} differ")
