"""registries.conf v2 parsing, mirrors, prefixes, short names; policy scopes."""
from __future__ import annotations

import json

import pytest

from crio_native.config.sections import ImageConfig
from crio_native.errors import ConfigError, FailedPrecondition, InvalidArgument
from crio_native.image.errors import PolicyRejected
from crio_native.image.policy import load_policy
from crio_native.image.reference import parse_reference
from crio_native.image.registries import is_loopback, load_registries


def conf(tmp_path, main="", dropins=(), **image_kw):
    (tmp_path / "registries.conf").write_text(main)
    d = tmp_path / "registries.conf.d"
    d.mkdir(exist_ok=True)
    for i, text in enumerate(dropins):
        (d / f"{i:02d}.conf").write_text(text)
    cfg = ImageConfig(registries_conf=str(tmp_path / "registries.conf"),
                      registries_conf_dir=str(d), **image_kw)
    return load_registries(cfg)


def sources(rc, text):
    return [(str(s), s.insecure, s.mirror) for s in rc.sources(parse_reference(text))]


def test_loopback_sources_may_use_plain_http(tmp_path):
    [source] = conf(tmp_path).sources(parse_reference("127.0.0.1:5000/a:1"))
    assert source.loopback and not source.insecure
    [source] = conf(tmp_path).sources(parse_reference("quay.io/a:1"))
    assert not source.loopback


def test_no_config_pulls_from_origin_over_tls(tmp_path):
    rc = conf(tmp_path)
    assert sources(rc, "quay.io/a/b:1") == [("quay.io/a/b", False, False)]


def test_mirror_then_origin_for_prefix(tmp_path):
    rc = conf(tmp_path, """
[[registry]]
prefix = "registry.k8s.io"
location = "registry.k8s.io"
[[registry.mirror]]
location = "127.0.0.1:5000"
[[registry.mirror]]
location = "mirror.example.com/k8s"
insecure = true
""")
    assert sources(rc, "registry.k8s.io/pause:3.10") == [
        ("127.0.0.1:5000/pause", False, True),
        ("mirror.example.com/k8s/pause", True, True),
        ("registry.k8s.io/pause", False, False)]


def test_longest_prefix_and_location_rewrite(tmp_path):
    rc = conf(tmp_path, """
[[registry]]
prefix = "example.com"
location = "a.example.net"
[[registry]]
prefix = "example.com/team"
location = "b.example.net/mirror/team"
""")
    assert sources(rc, "example.com/team/app:1") == [("b.example.net/mirror/team/app", False, False)]
    assert sources(rc, "example.com/other:1") == [("a.example.net/other", False, False)]
    assert sources(rc, "example.community/x:1") == [("example.community/x", False, False)]


def test_wildcard_prefix(tmp_path):
    rc = conf(tmp_path, '[[registry]]\nprefix = "*.example.com"\ninsecure = true\n')
    assert sources(rc, "r.example.com/x:1") == [("r.example.com/x", True, False)]


def test_blocked(tmp_path):
    rc = conf(tmp_path, '[[registry]]\nlocation = "evil.io"\nblocked = true\n')
    with pytest.raises(FailedPrecondition, match="blocked"):
        rc.sources(parse_reference("evil.io/x:1"))


def test_mirror_by_digest_only(tmp_path):
    rc = conf(tmp_path, '[[registry]]\nlocation = "q.io"\nmirror-by-digest-only = true\n'
                        '[[registry.mirror]]\nlocation = "m.io"\n')
    assert [s for s, _, _ in sources(rc, "q.io/x:1")] == ["q.io/x"]
    digest = "sha256:" + "1" * 64
    assert [s for s, _, _ in sources(rc, f"q.io/x@{digest}")] == ["m.io/x", "q.io/x"]


def test_dropin_replaces_same_prefix_and_search(tmp_path):
    rc = conf(tmp_path, 'unqualified-search-registries = ["a.io", "b.io"]\n'
                        '[[registry]]\nlocation = "q.io"\ninsecure = true\n',
              dropins=['unqualified-search-registries = ["c.io"]\n'
                       '[[registry]]\nlocation = "q.io"\n'])
    assert rc.search == ["c.io"]
    assert sources(rc, "q.io/x:1") == [("q.io/x", False, False)]


def test_daemon_config_mirrors_and_insecure(tmp_path):
    rc = conf(tmp_path, mirrors={"docker.io": ["mirror.local:5000"]},
              insecure_registries=["mirror.local:5000"])
    assert sources(rc, "busybox") == [("mirror.local:5000/library/busybox", True, True),
                                      ("docker.io/library/busybox", False, False)]


def test_short_names(tmp_path):
    assert [str(r) for r in conf(tmp_path).candidates(parse_reference("busybox"))] == [
        "docker.io/library/busybox:latest"]
    one = conf(tmp_path, 'unqualified-search-registries = ["quay.io"]\n')
    assert [str(r) for r in one.candidates(parse_reference("busybox"))] == [
        "quay.io/busybox:latest"]
    two = 'unqualified-search-registries = ["quay.io", "docker.io"]\n'
    with pytest.raises(InvalidArgument, match="ambiguous"):
        conf(tmp_path, two).candidates(parse_reference("busybox"))
    permissive = conf(tmp_path, two + 'short-name-mode = "permissive"\n')
    assert [str(r) for r in permissive.candidates(parse_reference("busybox"))] == [
        "quay.io/busybox:latest", "docker.io/library/busybox:latest"]


def test_short_name_aliases_win_over_search(tmp_path):
    rc = conf(tmp_path, 'unqualified-search-registries = ["quay.io", "docker.io"]\n'
                        '[aliases]\n"app" = "registry.example/team/app"\n',
              dropins=['[aliases]\n"busybox" = "docker.io/library/busybox"\n'])
    assert [str(r) for r in rc.candidates(parse_reference("app:2"))] == [
        "registry.example/team/app:2"]
    assert [str(r) for r in rc.candidates(parse_reference("busybox"))] == [
        "docker.io/library/busybox:latest"]
    with pytest.raises(InvalidArgument, match="ambiguous"):
        rc.candidates(parse_reference("other"))


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="short-name-mode"):
        conf(tmp_path, 'short-name-mode = "loose"\n')
    with pytest.raises(ConfigError, match="cannot read"):
        conf(tmp_path, "[[registry]\n")
    with pytest.raises(ConfigError, match="wildcard"):
        conf(tmp_path, '[[registry]]\nprefix = "*.a.io"\nlocation = "b.io"\n')


@pytest.mark.parametrize("host, expected", [
    ("localhost", True), ("localhost:5000", True), ("127.0.0.1:5000", True),
    ("127.9.9.9", True), ("[::1]:5000", True), ("10.0.0.1:5000", False),
    ("registry.k8s.io", False)])
def test_loopback(host, expected):
    assert is_loopback(host) is expected


# ---- policy.json -------------------------------------------------------------

def write_policy(tmp_path, doc):
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(doc))
    return load_policy(str(path))


ACCEPT = [{"type": "insecureAcceptAnything"}]
REJECT = [{"type": "reject"}]


def test_policy_missing_file_accepts(tmp_path):
    load_policy(str(tmp_path / "absent.json")).check(parse_reference("quay.io/x"))


@pytest.mark.parametrize("image, allowed", [
    ("quay.io/ok/app:1", True),            # repository namespace scope
    ("quay.io/ok/app:bad", False),         # exact tag scope beats the namespace
    ("quay.io/other:1", False),            # host scope
    ("reg.trusted.io/x:1", True),          # wildcard scope
    ("docker.io/library/busybox", True),   # transport default
])
def test_policy_scopes(tmp_path, image, allowed):
    policy = write_policy(tmp_path, {"default": REJECT, "transports": {"docker": {
        "": ACCEPT, "quay.io": REJECT, "quay.io/ok": ACCEPT, "quay.io/ok/app:bad": REJECT,
        "*.trusted.io": ACCEPT}}})
    ref = parse_reference(image)
    if allowed:
        policy.check(ref)
    else:
        with pytest.raises(PolicyRejected, match="rejected by signature policy"):
            policy.check(ref)


def test_policy_global_default_and_unsupported(tmp_path):
    with pytest.raises(PolicyRejected):
        write_policy(tmp_path, {"default": REJECT}).check(parse_reference("a.io/x"))
    signed = write_policy(tmp_path, {"default": [{"type": "signedBy", "keyType": "GPGKeys"}]})
    with pytest.raises(PolicyRejected, match="cannot verify yet"):
        signed.check(parse_reference("a.io/x"))
    with pytest.raises(ConfigError):
        write_policy(tmp_path, {"default": [{"type": "maybe"}]})
