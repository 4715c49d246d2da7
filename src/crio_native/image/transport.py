"""HTTP connection pools per TLS setting: system CAs by default, plus the
CAs and client certificates of <registry_certs_dir>/<host[:port]>/ as in
containers-certs.d(5), and one pool that skips verification for registries
configured insecure."""
from __future__ import annotations

import ssl
import threading
from pathlib import Path
from typing import Any

import urllib3

POOL_OPTIONS: dict[str, Any] = dict(num_pools=32, maxsize=16, retries=False)

# Unverified TLS happens only for registries the admin marked insecure.
urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

_default = urllib3.PoolManager(**POOL_OPTIONS)
_unverified = urllib3.PoolManager(cert_reqs="CERT_NONE", assert_hostname=False, **POOL_OPTIONS)
_custom: dict[tuple, urllib3.PoolManager] = {}
_lock = threading.Lock()


def _fingerprint(d: Path) -> tuple:
    return tuple(sorted((p.name, p.stat().st_mtime_ns) for p in d.iterdir() if p.is_file()))


def _context_for(d: Path) -> ssl.SSLContext:
    context = ssl.create_default_context()
    for ca in sorted(d.glob("*.crt")):
        context.load_verify_locations(cafile=str(ca))
    for cert in sorted(d.glob("*.cert")):
        context.load_cert_chain(str(cert), str(cert.with_suffix(".key")))
    return context


def pool_for(host: str, certs_dir: str, insecure: bool) -> urllib3.PoolManager:
    """The pool to reach `host` with (insecure: TLS without verification)."""
    if insecure:
        return _unverified
    d = Path(certs_dir) / host
    if not d.is_dir():
        return _default
    key = (str(d), _fingerprint(d))
    with _lock:
        pool = _custom.get(key)
        if pool is None:
            pool = _custom[key] = urllib3.PoolManager(ssl_context=_context_for(d), **POOL_OPTIONS)
        return pool


def is_verification_failure(error: BaseException) -> bool:
    """True when TLS was spoken but the peer's certificate was not trusted
    (as opposed to a peer that speaks plain HTTP)."""
    seen: set[int] = set()
    current: object = error
    while isinstance(current, BaseException) and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError) or \
                "CERTIFICATE_VERIFY_FAILED" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False
