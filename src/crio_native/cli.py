"""The `crio-native` command: daemon, config, status, verify, version."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

from crio_native import __version__
from crio_native.config import Config, LoadedConfig, load_config, render_toml
from crio_native.errors import ConfigError
from crio_native.locking import AlreadyRunning
from crio_native.logsetup import configure_logging

EXIT_CONFIG = 2

# flag -> (dotted config key, argparse options)
CONFIG_FLAGS: dict[str, tuple[str, dict[str, Any]]] = {
    "--listen": ("api.listen", {"metavar": "PATH", "help": "CRI unix socket"}),
    "--root": ("root", {"metavar": "DIR", "help": "persistent state directory"}),
    "--runroot": ("runroot", {"metavar": "DIR", "help": "volatile state directory"}),
    "--log-dir": ("log_dir", {"metavar": "DIR", "help": "default directory for pod logs"}),
    "--cni-config-dir": ("network.network_dir", {"metavar": "DIR"}),
    "--cni-plugin-dir": ("network.plugin_dirs",
                         {"metavar": "DIR", "action": "append", "help": "repeatable"}),
    "--registries-conf": ("image.registries_conf", {"metavar": "FILE"}),
    "--signature-policy": ("image.signature_policy", {"metavar": "FILE"}),
    "--pause-image": ("image.pause_image", {"metavar": "IMAGE"}),
    "--default-runtime": ("runtime.default_runtime", {"metavar": "HANDLER"}),
    "--cgroup-manager": ("runtime.cgroup_manager", {"metavar": "cgroupfs|systemd"}),
    "--stream-address": ("api.stream_address", {"metavar": "ADDR"}),
    "--stream-port": ("api.stream_port", {"metavar": "PORT", "type": int}),
    "--log-level": ("log_level", {"metavar": "debug|info|warning|error"}),
    "--log-format": ("log_format", {"metavar": "text|json"}),
}


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS keeps an unset flag out of the namespace, so flags given before
    # or after the subcommand both count and neither overwrites the other.
    parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="main config file (default /etc/crio-native/crio-native.conf)")
    parser.add_argument("--config-dir", metavar="DIR", default=argparse.SUPPRESS,
                        help="drop-in directory (default /etc/crio-native/crio-native.conf.d)")
    for flag, (_, options) in CONFIG_FLAGS.items():
        parser.add_argument(flag, default=argparse.SUPPRESS, **options)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crio-native", description=__doc__)
    add_config_flags(parser)
    sub = parser.add_subparsers(dest="command")
    add_config_flags(sub.add_parser("daemon", help="run the CRI server (the default)"))
    config = sub.add_parser("config", help="print the effective configuration as TOML")
    add_config_flags(config)
    config.add_argument("--default", action="store_true", help="print the embedded defaults")
    status = sub.add_parser("status", help="ask the running daemon for its handlers, "
                            "objects and effective configuration with each key's origin")
    add_config_flags(status)
    status.add_argument("--socket", metavar="PATH",
                        help="the daemon's CRI socket (default: api.listen of the config)")
    status.add_argument("--json", action="store_true")
    verify = sub.add_parser("verify", help="check a container's attestation record against "
                            "the public key of the node whose state is under --root")
    add_config_flags(verify)
    verify.add_argument("file", metavar="FILE", help="the record (- for standard input)")
    version = sub.add_parser("version", help="print the version")
    version.add_argument("--json", action="store_true")
    return parser


def overrides_from(args: argparse.Namespace) -> dict[str, tuple[Any, str]]:
    out = {}
    for flag, (key, _) in CONFIG_FLAGS.items():
        dest = flag.lstrip("-").replace("-", "_")
        if hasattr(args, dest):
            out[key] = (getattr(args, dest), f"flag {flag}")
    return out


def load_from_args(args: argparse.Namespace) -> LoadedConfig:
    return load_config(getattr(args, "config", None), getattr(args, "config_dir", None),
                       overrides_from(args))


def print_version(as_json: bool) -> None:
    from crio_native._native import seccomp
    from crio_native.cri.runtime_info import RUNTIME_API_VERSION, RUNTIME_NAME

    info = {"name": RUNTIME_NAME, "version": __version__,
            "runtime_api_version": RUNTIME_API_VERSION,
            "libseccomp": ".".join(map(str, seccomp.library_version()))}
    if as_json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            print(f"{key}: {value}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "version":
        print_version(args.json)
        return 0
    if args.command == "config" and args.default:
        sys.stdout.write(render_toml(Config()))
        return 0
    try:
        loaded = load_from_args(args)
    except ConfigError as e:
        print(f"crio-native: invalid configuration: {e}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "config":
        sys.stdout.write(render_toml(loaded.config))
        return 0
    if args.command == "status":
        from crio_native.status_cli import run_status

        return run_status(loaded, args.socket, args.json)
    if args.command == "verify":
        from crio_native.attestation.verify_cli import run_verify

        return run_verify(loaded.config.root, args.file)
    configure_logging(loaded.config.log_level, loaded.config.log_format)
    from crio_native.daemon import serve

    try:
        return serve(loaded, reload_config=lambda: load_from_args(args))
    except AlreadyRunning as e:
        print(f"crio-native: refusing to start: {e}", file=sys.stderr)
        return 1
    except ConfigError as e:   # found at start-up: a policy file, the node key
        print(f"crio-native: invalid configuration: {e}", file=sys.stderr)
        return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
