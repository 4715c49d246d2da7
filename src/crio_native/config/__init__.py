"""Daemon configuration: schema with embedded defaults, file loading, rendering."""
from crio_native.config.load import (
    DEFAULT_CONFIG_DIR,
    DEFAULT_CONFIG_FILE,
    LoadedConfig,
    load_config,
    render_toml,
)
from crio_native.config.sections import Config, parse_duration

__all__ = [
    "Config",
    "DEFAULT_CONFIG_DIR",
    "DEFAULT_CONFIG_FILE",
    "LoadedConfig",
    "load_config",
    "parse_duration",
    "render_toml",
]
