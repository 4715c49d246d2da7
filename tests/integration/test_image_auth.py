"""Pulls that need TLS or credentials: a registry behind TLS with its own
CA, htpasswd Basic auth (CRI AuthConfig and auth.json), and token auth."""
from __future__ import annotations

import base64
import json
import os
import shutil

import pytest

from crio_native.image.distribution import Credentials
from crio_native.image.errors import RegistryUnavailable, Unauthenticated
from tests.fixtures.image_service import make_service  # noqa: F401
from tests.fixtures.oci_builder import ImageBuilder, Pusher
from tests.fixtures.pki import make_signing_key
from tests.fixtures.registry import running_registry
from tests.fixtures.token_server import TokenServer

pytestmark = pytest.mark.root
USERS = {"alice": "wonderland"}


@pytest.fixture(scope="module")
def tls_registry():
    with running_registry(tls=True) as reg:
        yield reg


@pytest.fixture(scope="module")
def basic_registry():
    with running_registry(htpasswd=USERS) as reg:
        yield reg


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory):
    key = make_signing_key(tmp_path_factory.mktemp("token-key"))
    tokens = TokenServer(key, USERS, refresh_tokens={"refresh-alice": "alice"}).start()
    try:
        with running_registry(token_realm=tokens.realm, token_cert=key.cert) as reg:
            reg.tokens = tokens
            yield reg
    finally:
        tokens.stop()


# ---- TLS -----------------------------------------------------------------------

def test_tls_with_ca_from_certs_dir(make_service, tls_registry):
    image = Pusher(tls_registry.url, ca_cert=str(tls_registry.ca_cert)).push_image(
        "tls/app", "1", ImageBuilder().busybox().build())
    svc = make_service()
    certs = svc.config.image.registry_certs_dir + f"/{tls_registry.host}"
    os.makedirs(certs)
    shutil.copy(tls_registry.ca_cert, f"{certs}/ca.crt")
    assert svc.pull(f"{tls_registry.host}/tls/app:1").id == image.id


def test_tls_untrusted_is_refused_even_on_loopback(make_service, tls_registry):
    Pusher(tls_registry.url, ca_cert=str(tls_registry.ca_cert)).push_image(
        "tls/app", "1", ImageBuilder().busybox().build())
    with pytest.raises(RegistryUnavailable, match="certificate verification failed"):
        make_service().pull(f"{tls_registry.host}/tls/app:1")


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_insecure_registry_skips_verification(make_service, tls_registry):
    image = Pusher(tls_registry.url, ca_cert=str(tls_registry.ca_cert)).push_image(
        "tls/app", "1", ImageBuilder().busybox().build())
    svc = make_service(f'[[registry]]\nlocation = "{tls_registry.host}"\ninsecure = true\n')
    assert svc.pull(f"{tls_registry.host}/tls/app:1").id == image.id


# ---- Basic auth ----------------------------------------------------------------

@pytest.fixture(scope="module")
def basic_image(basic_registry):
    return Pusher(basic_registry.url, "alice", USERS["alice"]).push_image(
        "private/app", "1", ImageBuilder().busybox().build())


def test_basic_auth_needs_credentials(make_service, basic_registry, basic_image):
    name = f"{basic_registry.host}/private/app:1"
    with pytest.raises(Unauthenticated, match="HTTP 401"):
        make_service().pull(name)
    with pytest.raises(Unauthenticated):
        make_service().pull(name, Credentials("alice", "wrong"))
    assert make_service().store.images.all() == []


@pytest.mark.parametrize("creds", [
    Credentials("alice", "wonderland"),
    Credentials.from_auth(auth=base64.b64encode(b"alice:wonderland").decode()),
], ids=["username-password", "auth"])
def test_basic_auth_with_cri_credentials(make_service, basic_registry, basic_image, creds):
    assert make_service().pull(f"{basic_registry.host}/private/app:1", creds).id == basic_image.id


def test_basic_auth_from_auth_file(make_service, basic_registry, basic_image, tmp_path):
    auth_file = tmp_path / "auth.json"
    auth_file.write_text(json.dumps({"auths": {
        basic_registry.host: {"auth": base64.b64encode(b"alice:nope").decode()},
        f"{basic_registry.host}/private": {"auth": base64.b64encode(b"alice:wonderland").decode()},
    }}))
    svc = make_service(auth_file=str(auth_file))
    assert svc.pull(f"{basic_registry.host}/private/app:1").id == basic_image.id


# ---- token auth ----------------------------------------------------------------

def test_token_auth(make_service, token_registry):
    image = Pusher(token_registry.url, "alice", USERS["alice"]).push_image(
        "tok/app", "1", ImageBuilder().busybox().build())
    name = f"{token_registry.host}/tok/app:1"
    with pytest.raises(Unauthenticated, match="token service"):
        make_service().pull(name)
    before = token_registry.tokens.requests
    assert make_service().pull(name, Credentials("alice", USERS["alice"])).id == image.id
    assert token_registry.tokens.requests > before


def test_token_auth_with_identity_token(make_service, token_registry):
    image = Pusher(token_registry.url, "alice", USERS["alice"]).push_image(
        "tok/idt", "1", ImageBuilder().busybox().build())
    name = f"{token_registry.host}/tok/idt:1"
    creds = Credentials(identity_token="refresh-alice")
    assert make_service().pull(name, creds).id == image.id
    with pytest.raises(Unauthenticated):
        make_service().pull(name, Credentials(identity_token="stolen"))


def test_registry_token_is_used_as_bearer(make_service, token_registry):
    image = Pusher(token_registry.url, "alice", USERS["alice"]).push_image(
        "tok/rt", "1", ImageBuilder().busybox().build())
    token = token_registry.tokens.token("alice", ["repository:tok/rt:pull"])
    before = token_registry.tokens.requests
    svc = make_service()
    assert svc.pull(f"{token_registry.host}/tok/rt:1", Credentials(registry_token=token)).id == \
        image.id
    assert token_registry.tokens.requests == before
