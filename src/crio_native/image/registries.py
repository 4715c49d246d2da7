"""Registry configuration in the containers-registries.conf(5) v2 format,
merged with the daemon config's image.mirrors and image.insecure_registries.

A pull source is (host, repository, insecure): mirrors of the matching
[[registry]] come first, in file order, then the registry's own location.
Registries on loopback may be reached over plain HTTP without being listed,
as Docker allows.  Short names resolve through [aliases] first, then the
unqualified-search-registries."""
from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from crio_native.config.sections import ImageConfig
from crio_native.errors import ConfigError, FailedPrecondition, InvalidArgument
from crio_native.image.reference import DOCKER_DOMAIN, Reference, parse_reference

SHORT_NAME_MODES = ("enforcing", "permissive", "disabled")


@dataclass(frozen=True)
class Source:
    """Where to fetch one reference from."""

    host: str
    repository: str
    insecure: bool       # configured insecure: TLS unverified, plain HTTP allowed
    mirror: bool
    loopback: bool = False  # plain HTTP allowed, TLS still verified when spoken

    def __str__(self) -> str:
        return f"{self.host}/{self.repository}"


@dataclass
class Mirror:
    location: str
    insecure: bool = False


@dataclass
class RegistryEntry:
    prefix: str
    location: str = ""
    insecure: bool = False
    blocked: bool = False
    mirror_by_digest_only: bool = False
    mirrors: list[Mirror] = field(default_factory=list)

    def matches(self, name: str) -> bool:
        if self.prefix.startswith("*."):
            host = name.split("/", 1)[0]
            return host.endswith(self.prefix[1:])
        return name == self.prefix or name.startswith(self.prefix + "/")

    def rewrite(self, name: str, location: str) -> str:
        """`name` with this entry's prefix replaced by `location`."""
        if self.prefix.startswith("*."):
            return name if not location else location + "/" + name.split("/", 1)[1]
        return (location or self.prefix) + name[len(self.prefix):]


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1, with or without a port."""
    if host.startswith("["):
        addr = host[1:host.index("]")]
    else:
        addr = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if addr == "localhost":
        return True
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return False


@dataclass
class RegistriesConf:
    registries: list[RegistryEntry] = field(default_factory=list)
    search: list[str] = field(default_factory=list)
    short_name_mode: str = "enforcing"
    insecure_extra: list[str] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)  # short name -> repository

    def entry_for(self, name: str) -> RegistryEntry | None:
        """The [[registry]] with the longest prefix matching `name`."""
        best = None
        for entry in self.registries:
            if entry.matches(name) and (best is None or len(entry.prefix) > len(best.prefix)):
                best = entry
        return best

    def _insecure(self, location: str, flagged: bool) -> bool:
        host = location.split("/", 1)[0]
        listed = any(location == p or location.startswith(p + "/") or host == p
                     for p in self.insecure_extra)
        return flagged or listed

    def _source(self, location: str, flagged: bool, mirror: bool) -> Source:
        host, _, repo = location.partition("/")
        return Source(host, repo, self._insecure(location, flagged), mirror, is_loopback(host))

    def sources(self, ref: Reference) -> list[Source]:
        """Mirrors then origin for a fully qualified reference."""
        entry = self.entry_for(ref.name)
        if entry is None:
            return [self._source(ref.name, False, False)]
        if entry.blocked:
            raise FailedPrecondition(
                f"registry {entry.prefix!r} is blocked by registries.conf; refusing to pull {ref}")
        out = []
        if ref.digest or not entry.mirror_by_digest_only:
            out = [self._source(entry.rewrite(ref.name, m.location), m.insecure, True)
                   for m in entry.mirrors]
        out.append(self._source(entry.rewrite(ref.name, entry.location), entry.insecure, False))
        return out

    def candidates(self, ref: Reference) -> list[Reference]:
        """Fully qualified references to try for `ref`, in order."""
        if not ref.short:
            return [ref]
        alias = self.aliases.get(ref.short_path)
        if alias is not None:
            target = parse_reference(alias, f"registries.conf alias {ref.short_path!r}")
            return [Reference(target.domain, target.path, ref.tag, ref.digest)]
        if not self.search:
            return [ref.with_domain(DOCKER_DOMAIN)]
        if len(self.search) > 1 and self.short_name_mode == "enforcing":
            raise InvalidArgument(
                f"image: short name {ref.short_path!r} is ambiguous: unqualified-search-registries "
                f"lists {', '.join(self.search)} and short-name-mode is enforcing; "
                f"use a fully qualified name")
        return [ref.with_domain(domain) for domain in self.search]


# ---- loading ---------------------------------------------------------------

def _entry_from_toml(raw: dict, source: str) -> RegistryEntry:
    prefix = raw.get("prefix") or raw.get("location")
    if not prefix:
        raise ConfigError("registry", "needs a prefix or a location", source)
    if prefix.startswith("*.") and raw.get("location"):
        raise ConfigError(f"registry {prefix}", "a wildcard prefix takes no location", source)
    mirrors = [Mirror(m["location"], bool(m.get("insecure", False)))
               for m in raw.get("mirror", [])]
    return RegistryEntry(prefix=prefix, location=raw.get("location", ""),
                         insecure=bool(raw.get("insecure", False)),
                         blocked=bool(raw.get("blocked", False)),
                         mirror_by_digest_only=bool(raw.get("mirror-by-digest-only", False)),
                         mirrors=mirrors)


def _merge_file(conf: RegistriesConf, path: Path) -> None:
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError("image.registries_conf", f"cannot read: {e}", str(path)) from None
    if "unqualified-search-registries" in raw:
        conf.search = list(raw["unqualified-search-registries"])
    if "short-name-mode" in raw:
        mode = raw["short-name-mode"]
        if mode not in SHORT_NAME_MODES:
            raise ConfigError("short-name-mode", f"must be one of {SHORT_NAME_MODES}", str(path))
        conf.short_name_mode = mode
    aliases = raw.get("aliases", {})
    if not isinstance(aliases, dict):
        raise ConfigError("aliases", "must be a table of short name = repository", str(path))
    conf.aliases.update(aliases)
    for item in raw.get("registry", []):
        entry = _entry_from_toml(item, str(path))
        # A drop-in's entry replaces an earlier one with the same prefix.
        conf.registries = [e for e in conf.registries if e.prefix != entry.prefix] + [entry]


def _merge_daemon_config(conf: RegistriesConf, image: ImageConfig) -> None:
    conf.insecure_extra = list(image.insecure_registries)
    for prefix, locations in image.mirrors.items():
        entry = next((e for e in conf.registries if e.prefix == prefix), None)
        if entry is None:
            entry = RegistryEntry(prefix=prefix)
            conf.registries.append(entry)
        entry.mirrors.extend(Mirror(loc) for loc in locations)


def load_registries(image: ImageConfig) -> RegistriesConf:
    """registries.conf, then its drop-in dir in lexical order, then the daemon config."""
    conf = RegistriesConf()
    main = Path(image.registries_conf)
    if main.is_file():
        _merge_file(conf, main)
    dropins = Path(image.registries_conf_dir)
    if dropins.is_dir():
        for path in sorted(dropins.glob("*.conf")):
            _merge_file(conf, path)
    _merge_daemon_config(conf, image)
    return conf
