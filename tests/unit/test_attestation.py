"""Attestation records: the node key (made once, kept, public half under the
root), the record's fields read from a real built spec, the canonical bytes
that are signed, verification (and its refusal of every one-byte change),
and `crio-native verify`'s exit codes."""
from __future__ import annotations

import json
import os
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from crio_native import cli
from crio_native.attestation import NodeKey, canonical_bytes, public_key_path, verify_record
from crio_native.attestation import keys
from crio_native.attestation.keys import load_public_key
from crio_native.attestation.record import parse_record
from crio_native.attestation.signer import Attestor, read, record_path
from crio_native.config.sections import Config, RuntimeHandlerConfig
from crio_native.container.record import ContainerRecord
from crio_native.errors import ConfigError
from crio_native.spec import build_container_spec
from tests.unit.test_spec_support import base_sandbox, config_with, make_inputs


def config_for(tmp_path, **runtime) -> Config:
    config = Config(root=str(tmp_path / "root"))
    for key, value in runtime.items():
        setattr(config.runtime, key, value)
    return config


def container() -> ContainerRecord:
    return ContainerRecord(id="c" * 64, sandbox_id="p1", name="app", attempt=0,
                           image="registry.local/app:1",
                           image_ref="registry.local/app@sha256:" + "ab" * 32,
                           image_id="sha256:" + "cd" * 32, runtime_handler="builtin",
                           started_at=1_700_000_000_000_000_000)


def spec(**changes) -> dict:
    return build_container_spec(make_inputs(config_with(
        **{"linux__security_context__seccomp__profile_type": 0, **changes}))).spec


# ---- the key ---------------------------------------------------------------------------

def test_the_key_is_made_once_and_its_public_half_written_under_the_root(tmp_path):
    root = tmp_path / "root"
    first = NodeKey.load_or_create(root)
    assert first.path == root / "attestation" / "node.key"
    assert stat.S_IMODE(os.stat(first.path).st_mode) == 0o600
    again = NodeKey.load_or_create(root)
    assert again.id == first.id
    assert load_public_key(public_key_path(root)) is not None
    assert again.id.startswith("sha256:") and len(again.id) == 7 + 64


def test_a_configured_key_path_is_used_and_the_public_key_still_goes_under_root(tmp_path):
    key = NodeKey.load_or_create(tmp_path / "root", str(tmp_path / "keys" / "k.pem"))
    assert key.path == tmp_path / "keys" / "k.pem" and key.path.exists()
    assert not (tmp_path / "root" / "attestation" / "node.key").exists()
    public = load_public_key(public_key_path(tmp_path / "root"))
    assert NodeKey(Ed25519PrivateKey.generate().private_bytes_raw(), key.path).id != key.id
    assert public.public_bytes_raw() == key.public.public_bytes_raw()


def test_a_key_file_that_is_not_an_ed25519_key_is_a_config_error(tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    with pytest.raises(ConfigError, match="runtime.attestation_key"):
        NodeKey.load_or_create(tmp_path / "root", str(bad))


# ---- the record ------------------------------------------------------------------------

def test_the_record_says_what_the_container_runs_with(tmp_path):
    config = config_for(tmp_path)
    attestor = Attestor.for_config(config)
    s = spec(**{"linux__security_context__capabilities__add_capabilities": ["CAP_NET_ADMIN"]})
    doc = attestor.attest(container(), s, base_sandbox())
    assert doc["spec_digest"].startswith("sha256:") and len(doc["spec_digest"]) == 71
    assert doc["seccomp_profile_digest"].startswith("sha256:")
    assert "CAP_NET_ADMIN" in doc["capabilities"]["bounding"]
    assert doc["user_namespace"] is None and doc["landlock_policy"] is None
    assert doc["selinux_label"] == "" and doc["apparmor_profile"] == ""
    assert doc["image"] == {"name": "registry.local/app:1",
                            "ref": "registry.local/app@sha256:" + "ab" * 32,
                            "digest": "sha256:" + "ab" * 32, "id": "sha256:" + "cd" * 32,
                            "signature": "unverified"}
    assert doc["handler"] == "builtin"
    assert doc["container"]["pod_namespace"] == "default" and doc["container"]["name"] == "app"
    assert doc["node"]["key_id"] == attestor.key.id
    # stored beside the container's record, in canonical form, not as a *.json record
    stored = record_path(tmp_path / "root" / "containers", "c" * 64)
    assert stored.name.endswith(".attestation")
    assert stored.read_bytes() == json.dumps(doc, sort_keys=True, separators=(",", ":"),
                                             ensure_ascii=False).encode()
    assert read(tmp_path / "root" / "containers", "c" * 64) == stored.read_text()


def test_unconfined_has_no_seccomp_digest_and_digests_follow_the_spec(tmp_path):
    attestor = Attestor.for_config(config_for(tmp_path))
    unconfined = attestor.record(container(), spec(
        **{"linux__security_context__seccomp__profile_type": 1}), base_sandbox())
    plain = attestor.record(container(), spec(), base_sandbox())
    assert unconfined["seccomp_profile_digest"] is None
    assert unconfined["spec_digest"] != plain["spec_digest"]


def test_user_namespace_maps_are_recorded(tmp_path):
    attestor = Attestor.for_config(config_for(tmp_path))
    s = spec()
    s["linux"]["namespaces"].append({"type": "user"})
    s["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    s["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    doc = attestor.record(container(), s, base_sandbox())
    assert doc["user_namespace"] == {"uid_mappings": s["linux"]["uidMappings"],
                                     "gid_mappings": s["linux"]["gidMappings"]}


def test_the_landlock_annotation_is_recorded_only_where_the_handler_allows_it(tmp_path):
    policy = '{"read_only": ["/"], "read_write": ["/tmp"]}'
    sandbox = base_sandbox(annotations={"landlock.crio-native.io/app": policy})
    config = config_for(tmp_path)
    assert Attestor.for_config(config).record(container(), spec(), sandbox)[
        "landlock_policy"] is None
    config.runtime.runtimes["builtin"] = RuntimeHandlerConfig(
        runtime_type="builtin", allowed_annotations=["landlock.crio-native.io/"])
    assert Attestor.for_config(config).record(container(), spec(), sandbox)[
        "landlock_policy"] == policy


def test_the_signed_bytes_are_the_canonical_json_without_the_signature(tmp_path):
    attestor = Attestor.for_config(config_for(tmp_path))
    doc = attestor.record(container(), spec(), base_sandbox())
    body = {k: v for k, v in doc.items() if k != "signature"}
    signed = json.dumps(body, sort_keys=True, separators=(",", ":"),
                        ensure_ascii=False).encode()
    assert canonical_bytes(doc) == signed
    attestor.key.public.verify(bytes.fromhex(doc["signature"]), signed)  # raises if not


# ---- verification ------------------------------------------------------------------------

@pytest.fixture
def signed(tmp_path):
    attestor = Attestor.for_config(config_for(tmp_path))
    attestor.attest(container(), spec(), base_sandbox())
    return attestor, record_path(tmp_path / "root" / "containers", "c" * 64).read_bytes()


def test_a_record_verifies_and_key_order_or_spacing_do_not_matter(signed):
    attestor, data = signed
    assert verify_record(data, attestor.key.public)[0]
    pretty = json.dumps(parse_record(data), indent=2).encode()
    assert verify_record(pretty, attestor.key.public) == verify_record(data, attestor.key.public)


def test_every_one_byte_change_is_refused(signed):
    attestor, data = signed
    for i in range(len(data)):
        for replacement in {data[i] ^ 0x01, ord("0") if data[i] != ord("0") else ord("1")}:
            changed = data[:i] + bytes([replacement]) + data[i + 1:]
            ok, reason = verify_record(changed, attestor.key.public)
            assert not ok, f"byte {i} {data[i:i + 1]!r} -> {bytes([replacement])!r} verified"


def test_another_nodes_key_is_named_in_the_reason(signed, tmp_path):
    _, data = signed
    other = NodeKey.load_or_create(tmp_path / "other")
    ok, reason = verify_record(data, other.public)
    assert not ok and "this node's key is " + other.id in reason


@pytest.mark.parametrize("data,reason", [
    (b"{", "not JSON"), (b"[]", "a JSON object is expected"), (b'{"a":1}', "no signature"),
    (b'{"a":1,"a":2,"signature":""}', "duplicate key"),
    (b'{"signature":"ZZ"}', "not hex"), (b'{"signature":"AB"}', "128 lowercase hex"),
])
def test_what_is_not_a_record_is_refused_with_the_reason(signed, data, reason):
    attestor, _ = signed
    ok, why = verify_record(data, attestor.key.public)
    assert not ok and reason in why


def test_crio_native_verify_exit_codes(signed, tmp_path, capsys):
    _, data = signed
    root = str(tmp_path / "root")
    good = tmp_path / "good.json"
    good.write_bytes(data)
    assert cli.main(["verify", "--root", root, str(good)]) == 0
    assert capsys.readouterr().out.startswith("valid: container " + "c" * 64)
    bad = tmp_path / "bad.json"
    i = data.index(b'"spec_digest":"sha256:') + len(b'"spec_digest":"sha256:')
    bad.write_bytes(data[:i] + (b"0" if data[i:i + 1] != b"0" else b"1") + data[i + 1:])
    assert cli.main(["verify", "--root", root, str(bad)]) == 1
    assert "invalid: signature does not verify" in capsys.readouterr().err
    assert cli.main(["verify", "--root", str(tmp_path / "nowhere"), str(good)]) == 1
    assert "cannot read the node's public key" in capsys.readouterr().err
    assert cli.main(["verify", "--root", root, str(tmp_path / "absent")]) == 1


def test_a_record_write_cut_short_is_swept_at_start(tmp_path):
    directory = tmp_path / "root" / "containers"
    directory.mkdir(parents=True)
    leftover = directory / (".%s.attestation.x1y2z3" % ("c" * 64))
    leftover.write_text("{")
    kept = directory / ("c" * 64 + ".json")
    kept.write_text("{}")
    Attestor.for_config(config_for(tmp_path))
    assert not leftover.exists() and kept.exists()


# ---- at start, without `cryptography` (keys.ensure_node_key) -----------------------------

def test_the_first_start_makes_the_key_in_a_child_and_a_later_start_only_checks_it(
        tmp_path, monkeypatch):
    root = tmp_path / "root"
    path = keys.ensure_node_key(root)
    assert path == root / "attestation" / "node.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    made = NodeKey.load_or_create(root)
    assert load_public_key(public_key_path(root)).public_bytes_raw() == \
        made.public.public_bytes_raw()

    def no_child(*args, **kwargs):
        raise AssertionError("a key of the usual form needs no child process")
    monkeypatch.setattr(keys.subprocess, "run", no_child)
    assert keys.ensure_node_key(root) == path


def test_a_start_with_the_key_but_no_public_file_writes_it_again(tmp_path):
    root = tmp_path / "root"
    first = NodeKey.load_or_create(root)
    public_key_path(root).unlink()
    keys.ensure_node_key(root)
    assert load_public_key(public_key_path(root)).public_bytes_raw() == \
        first.public.public_bytes_raw()


@pytest.mark.parametrize("content", [b"not a key", b"-----BEGIN PRIVATE KEY-----\nAAAA\n"
                                     b"-----END PRIVATE KEY-----\n"])
def test_a_start_with_a_key_file_that_is_no_ed25519_key_is_a_config_error(tmp_path, content):
    bad = tmp_path / "bad.pem"
    bad.write_bytes(content)
    with pytest.raises(ConfigError, match="runtime.attestation_key.*not an unencrypted PEM"):
        keys.ensure_node_key(tmp_path / "root", str(bad))
    with pytest.raises(ConfigError, match="runtime.attestation_key"):
        Attestor.for_config(config_for(tmp_path, attestation_key=str(bad)))


def test_the_attestor_loads_the_key_at_its_first_record_and_signs_with_the_node_key(tmp_path):
    config = config_for(tmp_path)
    attestor = Attestor.for_config(config)
    assert attestor._key is None
    doc = attestor.record(container(), spec(), base_sandbox())
    on_disk = NodeKey.load_or_create(config.root)
    assert doc["node"]["key_id"] == on_disk.id
    assert verify_record(json.dumps(doc).encode(), on_disk.public)[0]


# ---- signing through the process's libcrypto (_native.ed25519) ---------------------------

def test_the_node_key_signs_with_libcrypto_what_cryptography_signs_and_verifies(tmp_path):
    """Ed25519 is deterministic: the native signature is byte for byte the
    one `cryptography` makes, and the existing verifier accepts the record."""
    from crio_native._native.ed25519 import SigningKey

    config = config_for(tmp_path)
    attestor = Attestor.for_config(config)
    doc = attestor.record(container(), spec(), base_sandbox())
    seed = keys._read_private(keys.default_key_path(config.root)).private_bytes_raw()
    reference = Ed25519PrivateKey.from_private_bytes(seed)
    signed = canonical_bytes(doc)
    assert bytes.fromhex(doc["signature"]) == reference.sign(signed)
    assert verify_record(json.dumps(doc).encode(), load_public_key(public_key_path(config.root)))
    native = SigningKey(seed)
    for data in (b"", b"x", signed * 50):
        assert native.sign(data) == reference.sign(data)
    assert native.public_key() == reference.public_key().public_bytes_raw()
    assert repr(seed) not in repr(attestor.key) and seed.hex() not in repr(attestor.key)


def test_the_public_key_file_is_written_byte_for_byte_as_cryptography_writes_it(tmp_path):
    from cryptography.hazmat.primitives import serialization

    for _ in range(5):
        private = Ed25519PrivateKey.generate()
        expected = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        assert keys.spki_pem(private.public_key().public_bytes_raw()) == expected


# RFC 8410 section 10.3: a PKCS#8 v2 (OneAsymmetricKey) Ed25519 key with an
# attribute and its public key attached, a form `cryptography` never writes
RFC8410_V2_KEY = b"""-----BEGIN PRIVATE KEY-----
MHICAQEwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC
oB8wHQYKKoZIhvcNAQkJFDEPDA1DdXJkbGUgQ2hhaXJzgSEAGb9ECWmEzf6FQbrB
Z9w7lshQhqowtrbLDFw4rXAxZuE=
-----END PRIVATE KEY-----
"""


def test_a_key_file_of_another_pkcs8_form_is_read_through_cryptography(tmp_path):
    path = tmp_path / "v2.pem"
    path.write_bytes(RFC8410_V2_KEY)
    key = NodeKey.load_or_create(tmp_path / "root", str(path))
    assert key.public_raw.hex() == \
        "19bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1"
    reference = keys._read_private(path)
    assert key.sign(b"data") == reference.sign(b"data")
    assert load_public_key(public_key_path(tmp_path / "root")).public_bytes_raw() == \
        key.public_raw


def test_the_native_signer_gives_rfc8032s_first_test_vector():
    from crio_native._native.ed25519 import SigningKey

    key = SigningKey(bytes.fromhex(
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"))
    assert key.public_key().hex() == \
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    assert key.sign(b"").hex() == (
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b")


def test_a_bad_seed_is_refused_by_the_native_signer():
    from crio_native._native.ed25519 import SigningKey

    for seed in (b"short", b"", b"x" * 33):
        with pytest.raises(ValueError, match="seed"):
            SigningKey(seed)


def test_one_native_key_signs_from_many_threads_at_once():
    from concurrent.futures import ThreadPoolExecutor

    from crio_native._native.ed25519 import SigningKey

    seed = Ed25519PrivateKey.generate().private_bytes_raw()
    reference = Ed25519PrivateKey.from_private_bytes(seed)
    key = SigningKey(seed)
    messages = [b"record %d" % i * (i + 1) for i in range(400)]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(key.sign, messages))
    assert got == [reference.sign(m) for m in messages]
