"""OCI distribution v2 client: manifests and blobs from one registry source,
with Bearer token and Basic auth, retries with backoff, and a no-progress
timeout (a socket read that waits longer than image.pull_progress_timeout
fails the pull)."""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Iterator

import urllib3

from crio_native.image.errors import (ContentMismatch, ManifestUnknown, PullTimeout,
                                      RegistryUnavailable, Unauthenticated)
from crio_native.image.registries import Source
from crio_native.image.transport import is_verification_failure, pool_for
from crio_native.logsetup import fields

log = logging.getLogger(__name__)

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_TYPES = (OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
CHUNK = 1024 * 1024
RETRIES = 3
BACKOFF_SECONDS = 0.25
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')



@dataclass(frozen=True)
class Credentials:
    """What the CRI AuthConfig (or an auth.json entry) gives us."""

    username: str = ""
    password: str = ""
    identity_token: str = ""
    registry_token: str = ""

    @classmethod
    def from_auth(cls, username: str = "", password: str = "", auth: str = "",
                  identity_token: str = "", registry_token: str = "") -> "Credentials":
        if auth and not username:
            decoded = base64.b64decode(auth).decode()
            username, _, password = decoded.partition(":")
        return cls(username, password, identity_token, registry_token)

    def basic(self) -> str | None:
        if not self.username:
            return None
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def _discard(resp) -> None:
    resp.drain_conn()
    resp.release_conn()


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


class RegistryClient:
    """Talks to one source (host + repository) for the length of a pull."""

    def __init__(self, source: Source, credentials: Credentials | None = None,
                 progress_timeout: float = 300.0,
                 certs_dir: str = "/etc/containers/certs.d"):
        self.source = source
        self.certs_dir = certs_dir
        self.pool = pool_for(source.host, certs_dir, source.insecure)
        self.credentials = credentials or Credentials()
        self.timeout = urllib3.Timeout(connect=min(progress_timeout, 30.0),
                                       read=progress_timeout)
        self.progress_timeout = progress_timeout
        self.scheme = "https"
        self._auth_header: str | None = None
        self._lock = threading.Lock()

    # ---- transport ----------------------------------------------------

    def _url(self, path: str) -> str:
        return f"{self.scheme}://{self.source.host}/v2/{self.source.repository}/{path}"

    def _send(self, method: str, path: str, headers: dict, stream: bool):
        h = dict(headers)
        if self._auth_header:
            h["Authorization"] = self._auth_header
        return self.pool.request(method, self._url(path), headers=h, timeout=self.timeout,
                                 preload_content=not stream, redirect=True)

    def _send_once(self, method: str, path: str, headers: dict, stream: bool):
        """One request, with the plain-HTTP fallback for insecure sources."""
        try:
            return self._send(method, path, headers, stream)
        except urllib3.exceptions.SSLError as e:
            if is_verification_failure(e):
                raise RegistryUnavailable(
                    f"{self.source}: TLS certificate verification failed ({e}); put the "
                    f"registry's CA in {self.certs_dir}/{self.source.host}/ca.crt or mark "
                    f"it insecure") from e
            plain_ok = self.source.insecure or self.source.loopback
            if not plain_ok or self.scheme == "http":
                raise
            log.debug("falling back to plain HTTP", extra=fields(host=self.source.host))
            self.scheme = "http"
            return self._send(method, path, headers, stream)

    def request(self, method: str, path: str, headers: dict | None = None,
                stream: bool = False):
        """A response with status < 400, after auth and retries; typed errors otherwise."""
        headers = headers or {}
        for attempt in range(RETRIES + 1):
            try:
                resp = self._send_once(method, path, headers, stream)
                if resp.status == 401 and self._authenticate(resp):
                    _discard(resp)
                    resp = self._send_once(method, path, headers, stream)
            except urllib3.exceptions.ReadTimeoutError as e:
                raise PullTimeout(f"{self.source}: no progress for {self.progress_timeout:g}s "
                                  f"(image.pull_progress_timeout)") from e
            except urllib3.exceptions.HTTPError as e:
                if attempt == RETRIES:
                    raise RegistryUnavailable(f"{self.source}: {method} {path}: {e}") from e
                self._backoff(attempt, str(e))
                continue
            if resp.status in (429, 500, 502, 503, 504) and attempt < RETRIES:
                _discard(resp)
                self._backoff(attempt, f"HTTP {resp.status}")
                continue
            return self._check(resp, method, path)
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int, why: str) -> None:
        log.info("registry request failed, retrying",
                 extra=fields(source=str(self.source), attempt=attempt + 1, error=why))
        time.sleep(BACKOFF_SECONDS * (2 ** attempt))

    def _check(self, resp, method: str, path: str):
        if resp.status < 400:
            return resp
        body = resp.data[:500].decode(errors="replace")  # read all: frees the connection
        resp.release_conn()
        what = f"{self.source}: {method} {path}"
        if resp.status == 404:
            raise ManifestUnknown(f"{what}: not found")  # the body is a JSON error list
        if resp.status in (401, 403):
            raise Unauthenticated(f"{what}: access denied (HTTP {resp.status}) {body}".rstrip())
        raise RegistryUnavailable(f"{what}: HTTP {resp.status} {body}".rstrip())

    # ---- auth -----------------------------------------------------------

    def _authenticate(self, resp) -> bool:
        """Set an Authorization header from the 401's challenge; False if we cannot."""
        challenge = resp.headers.get("WWW-Authenticate", "")
        scheme, _, params_text = challenge.partition(" ")
        with self._lock:
            before = self._auth_header
            if scheme.lower() == "basic":
                self._auth_header = self.credentials.basic()
            elif scheme.lower() == "bearer":
                self._auth_header = self._bearer(dict(_CHALLENGE_PARAM.findall(params_text)))
            return self._auth_header is not None and self._auth_header != before

    def _bearer(self, params: dict[str, str]) -> str | None:
        if self.credentials.registry_token:
            return f"Bearer {self.credentials.registry_token}"
        realm = params.get("realm")
        if not realm:
            return None
        query = {"service": params.get("service", "")}
        query["scope"] = params.get("scope") or f"repository:{self.source.repository}:pull"
        try:
            resp = self._token_request(realm, query)
        except urllib3.exceptions.HTTPError as e:
            raise RegistryUnavailable(f"{self.source}: token service {realm}: {e}") from e
        if resp.status != 200:
            raise Unauthenticated(f"{self.source}: token service {realm} answered "
                                  f"HTTP {resp.status}")
        try:
            doc = json.loads(resp.data)
            token = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError):
            raise Unauthenticated(f"{self.source}: token service {realm} answered "
                                  f"something that is not a token") from None
        return f"Bearer {token}" if token else None

    def _token_request(self, realm: str, query: dict[str, str]):
        if self.credentials.identity_token:
            # OAuth2 refresh-token grant, as docker does with identity tokens.
            form = {**query, "grant_type": "refresh_token", "client_id": "crio-native",
                    "refresh_token": self.credentials.identity_token}
            return self.pool.request("POST", realm, fields=form, encode_multipart=False,
                                     timeout=self.timeout)
        basic = self.credentials.basic()
        return self.pool.request("GET", realm, fields=query, timeout=self.timeout,
                                 headers={"Authorization": basic} if basic else {})

    # ---- API ------------------------------------------------------------

    def get_manifest(self, reference: str) -> tuple[bytes, str, str]:
        """(body, media type, digest) of a manifest or index; verified when
        `reference` is a digest."""
        resp = self.request("GET", f"manifests/{reference}",
                            {"Accept": ", ".join(MANIFEST_TYPES)})
        body = resp.data
        if len(body) > MAX_MANIFEST_BYTES:
            raise ContentMismatch(f"{self.source}: manifest {reference} is over "
                                  f"{MAX_MANIFEST_BYTES} bytes")
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        if media_type not in MANIFEST_TYPES:
            try:
                media_type = json.loads(body).get("mediaType", media_type)
            except (ValueError, AttributeError):
                raise ContentMismatch(f"{self.source}: manifest {reference} is not "
                                      f"JSON") from None
        if ":" in reference:
            algorithm = reference.split(":", 1)[0]
            if digest_of(body, algorithm) != reference:
                raise ContentMismatch(f"{self.source}: manifest does not match digest "
                                      f"{reference}")
            return body, media_type, reference
        return body, media_type, digest_of(body)

    def blob_chunks(self, digest: str) -> Iterator[bytes]:
        """The raw bytes of a blob, streamed (the caller verifies the digest)."""
        resp = self.request("GET", f"blobs/{digest}", stream=True)
        finished = False
        try:
            while True:
                try:
                    chunk = resp.read(CHUNK, decode_content=False)
                except urllib3.exceptions.ReadTimeoutError as e:
                    raise PullTimeout(f"{self.source}: blob {digest}: no progress for "
                                      f"{self.progress_timeout:g}s "
                                      f"(image.pull_progress_timeout)") from e
                except urllib3.exceptions.HTTPError as e:
                    raise RegistryUnavailable(f"{self.source}: blob {digest}: {e}") from e
                if not chunk:
                    finished = True
                    return
                yield chunk
        finally:
            if not finished:
                resp.close()  # unread bytes would poison the pooled connection
            resp.release_conn()

    def get_blob(self, digest: str, limit: int = MAX_MANIFEST_BYTES) -> bytes:
        data = b"".join(self.blob_chunks(digest))
        if len(data) > limit:
            raise ContentMismatch(f"{self.source}: blob {digest} is over {limit} bytes")
        if digest_of(data, digest.split(":", 1)[0]) != digest:
            raise ContentMismatch(f"{self.source}: blob does not match digest {digest}")
        return data
