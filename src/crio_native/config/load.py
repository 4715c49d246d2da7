"""Where the effective configuration comes from, in rising precedence:
embedded defaults < the main file < drop-ins (lexical order) < command-line
flags.  Each source is checked against the schema as it is read, so an error
names the file (or flag) it came from."""
from __future__ import annotations

import dataclasses
import tomllib
import typing
from pathlib import Path
from typing import Any

import tomli_w

from crio_native.config.sections import Config
from crio_native.errors import ConfigError

DEFAULT_CONFIG_FILE = "/etc/crio-native/crio-native.conf"
DEFAULT_CONFIG_DIR = "/etc/crio-native/crio-native.conf.d"
EMBEDDED = "embedded default"


@dataclasses.dataclass
class LoadedConfig:
    config: Config
    origins: dict[str, str]  # dotted key -> the file or flag that set it last
    sources: list[str]       # every file read, in order


def load_config(
    config_file: str | None = None,
    config_dir: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> LoadedConfig:
    """Read, merge and validate.  An explicitly named config file must exist;
    the default one may be absent.  Raises ConfigError."""
    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    sources: list[str] = []
    for path in _config_files(config_file, config_dir):
        raw = _read_toml(path)
        _check(Config, raw, "", str(path))
        _merge(merged, raw, "", str(path), origins)
        sources.append(str(path))
    if overrides:
        for dotted, (value, flag) in overrides.items():
            raw = _nest(dotted, value)
            _check(Config, raw, "", flag)
            _merge(merged, raw, "", flag, origins)
    config = _build(Config, merged)
    try:
        config.validate()
    except ConfigError as e:
        e.source = _origin_of(e.key, origins)
        e.args = (f"{e.source}: {e.key}: {e.reason}",)
        raise
    return LoadedConfig(config=config, origins=origins, sources=sources)


def render_toml(config: Config) -> str:
    return tomli_w.dumps(dataclasses.asdict(config))


def _config_files(config_file: str | None, config_dir: str | None) -> list[Path]:
    files: list[Path] = []
    main = Path(config_file or DEFAULT_CONFIG_FILE)
    if main.exists() and not main.is_dir():
        files.append(main)
    elif config_file is not None:
        raise ConfigError("--config", "no such file", str(main))
    drop_dir = Path(config_dir or DEFAULT_CONFIG_DIR)
    if drop_dir.is_dir():
        files.extend(sorted(p for p in drop_dir.iterdir() if p.suffix == ".conf" and p.is_file()))
    elif config_dir is not None:
        raise ConfigError("--config-dir", "no such directory", str(drop_dir))
    return files


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("(syntax)", f"not valid TOML: {e}", str(path)) from None
    except OSError as e:
        raise ConfigError("(file)", f"cannot read: {e.strerror}", str(path)) from None


def _nest(dotted: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    node = out
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is list:
        return "a list of strings"
    if origin is dict:
        return "a table"
    if dataclasses.is_dataclass(tp):
        return "a table"
    return {str: "a string", int: "an integer", bool: "true or false"}.get(tp, str(tp))


def _check_value(tp: Any, value: Any, key: str, source: str) -> None:
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(key, f"must be {_type_name(tp)}", source)
        _check(tp, value, key + ".", source)
    elif origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(key, "must be a table", source)
        _, value_tp = typing.get_args(tp)
        for k, v in value.items():
            _check_value(value_tp, v, f"{key}.{k}", source)
    elif origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list) or not all(isinstance(v, item_tp) for v in value):
            raise ConfigError(key, f"must be {_type_name(tp)}", source)
    elif tp is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(key, f"must be an integer (got {value!r})", source)
    elif not isinstance(value, tp):
        raise ConfigError(key, f"must be {_type_name(tp)} (got {value!r})", source)


def _check(cls: type, raw: dict[str, Any], prefix: str, source: str) -> None:
    hints = typing.get_type_hints(cls)
    for key, value in raw.items():
        if key not in hints:
            raise ConfigError(f"{prefix}{key}", "unknown key", source)
        _check_value(hints[key], value, f"{prefix}{key}", source)


def _merge(dst: dict[str, Any], src: dict[str, Any], prefix: str, source: str,
           origins: dict[str, str]) -> None:
    """Tables merge key by key; scalars and lists replace."""
    for key, value in src.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            _merge(dst.setdefault(key, {}), value, dotted + ".", source, origins)
        else:
            dst[key] = value
            origins[dotted] = source


def _build(cls: type, raw: dict[str, Any], base: Any = None) -> Any:
    """`base` (or the defaults) overlaid with `raw`, which is already type-checked."""
    obj = dataclasses.replace(base) if base is not None else cls()
    hints = typing.get_type_hints(cls)
    for key, value in raw.items():
        tp = hints[key]
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            value = _build(tp, value, getattr(obj, key))
        elif typing.get_origin(tp) is dict:
            _, value_tp = typing.get_args(tp)
            table = dict(getattr(obj, key))
            for name, item in value.items():
                if isinstance(value_tp, type) and dataclasses.is_dataclass(value_tp):
                    item = _build(value_tp, item, table.get(name))
                table[name] = item
            value = table
        setattr(obj, key, value)
    return obj


def _origin_of(key: str, origins: dict[str, str]) -> str:
    """The source that set `key` or, for a table key, any key below it."""
    if key in origins:
        return origins[key]
    below = [src for k, src in origins.items() if k.startswith(key + ".")]
    return below[-1] if below else EMBEDDED
