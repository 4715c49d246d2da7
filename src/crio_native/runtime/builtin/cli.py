"""`crio-native-runtime`: the built-in runtime behind runc's command line, so
the same driver code (and people) can run builtin, runc and crun alike.

    crio-native-runtime [--root DIR] [--cgroup-root PATH] [--log FILE]
                        [--log-format text|json] COMMAND
    create --bundle DIR [--pid-file FILE] [--console-socket PATH] ID | start ID | state ID
    exec [--process FILE] [--cwd DIR] [-e K=V] [-u UID[:GID]] ID [ARGS...]
    kill [--all] ID [SIGNAL] | delete [--force] ID
    run --bundle DIR [--pid-file F] [--console-socket PATH] [--detach] ID
    ps [--format table|json] ID [PS_ARGS...] | pause ID | resume ID | list | features
    update [--resources FILE|-] [--memory N] [--cpu-quota N] ... ID

`run` without --detach stays attached: with process.terminal it makes its
own console socket and copies between the pty and its stdio (runtime/
console_proxy.py), as runc does."""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from crio_native.errors import CrioNativeError, InvalidArgument

DEFAULT_ROOT = "/run/crio-native-runtime"


def parse_signal(value: str) -> int:
    if value.isdigit():
        return int(value)
    name = value.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise InvalidArgument(f"unknown signal {value!r}") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="crio-native-runtime",
                                description="crio-native's built-in OCI runtime")
    p.add_argument("--root", default=DEFAULT_ROOT, help="state directory")
    p.add_argument("--cgroup-root", metavar="PATH",
                   help="cgroup that container groups go at or below (default: "
                        "$CRIO_NATIVE_CGROUP_ROOT, else this process's own cgroup)")
    p.add_argument("--log", help="write errors to this file instead of stderr")
    p.add_argument("--log-format", choices=("text", "json"), default="text")
    p.add_argument("--systemd-cgroup", action="store_true", help=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("create", "run"):
        c = sub.add_parser(name)
        c.add_argument("--bundle", "-b", default=".")
        c.add_argument("--pid-file")
        c.add_argument("--console-socket")
        c.add_argument("--no-pivot", action="store_true",
                       help="move the rootfs onto / and chroot instead of pivot_root")
        c.add_argument("--no-new-keyring", action="store_true")
        if name == "run":
            c.add_argument("--detach", "-d", action="store_true")
        c.add_argument("id")
    for name in ("start", "state", "pause", "resume"):
        sub.add_parser(name).add_argument("id")
    e = sub.add_parser("exec")
    e.add_argument("--process", "-p", help="an OCI process JSON file")
    e.add_argument("--cwd")
    e.add_argument("--env", "-e", action="append", default=[])
    e.add_argument("--user", "-u", help="uid[:gid]")
    e.add_argument("id")
    e.add_argument("args", nargs=argparse.REMAINDER)
    k = sub.add_parser("kill")
    k.add_argument("--all", "-a", action="store_true")
    k.add_argument("id")
    k.add_argument("signal", nargs="?", default="SIGTERM")
    d = sub.add_parser("delete")
    d.add_argument("--force", "-f", action="store_true")
    d.add_argument("id")
    ps = sub.add_parser("ps")
    ps.add_argument("--format", "-f", choices=("table", "json"), default="table")
    ps.add_argument("id")
    ps.add_argument("ps_args", nargs=argparse.REMAINDER)
    sub.add_parser("list")
    sub.add_parser("features")
    _update_parser(sub.add_parser("update"))
    return p


# runc update's flags: (flag, section, key, parse)
UPDATE_FLAGS = (
    ("--memory", "memory", "limit", "bytes"),
    ("--memory-reservation", "memory", "reservation", "bytes"),
    ("--memory-swap", "memory", "swap", "bytes"),
    ("--cpu-shares", "cpu", "shares", "int"),
    ("--cpu-period", "cpu", "period", "int"),
    ("--cpu-quota", "cpu", "quota", "int"),
    ("--cpu-rt-period", "cpu", "realtimePeriod", "int"),
    ("--cpu-rt-runtime", "cpu", "realtimeRuntime", "int"),
    ("--cpuset-cpus", "cpu", "cpus", "str"),
    ("--cpuset-mems", "cpu", "mems", "str"),
    ("--pids-limit", "pids", "limit", "int"),
    ("--blkio-weight", "blockIO", "weight", "int"),
)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_bytes(value: str, flag: str = "value") -> int:
    """A size as runc's flags take it: -1 (unlimited) or a number with an
    optional binary suffix (k, m, g, t, p; "b"/"ib" allowed after it)."""
    text = value.strip().lower()
    if text == "-1":
        return -1
    for tail in ("ib", "b"):
        if text.endswith(tail) and text[:-len(tail)][-1:].isalpha():
            text = text[:-len(tail)]
            break
    unit = text[-1:] if text[-1:].isalpha() else ""
    number = text[:-1] if unit else text
    try:
        if unit not in _UNITS:
            raise ValueError
        amount = float(number)
    except ValueError:
        raise InvalidArgument(f"update: {flag}: invalid size {value!r}") from None
    if amount < 0:
        raise InvalidArgument(f"update: {flag}: invalid size {value!r}")
    return int(amount * _UNITS[unit])


def _update_parser(u: argparse.ArgumentParser) -> None:
    u.add_argument("--resources", "-r", help="a JSON file of linux.resources, or - for stdin")
    for flag, _section, _key, _kind in UPDATE_FLAGS:
        u.add_argument(flag)
    u.add_argument("id")


def update_resources(args) -> dict:
    """linux.resources from --resources, with the single-value flags on top
    (runc's order)."""
    resources: dict = {}
    if args.resources:
        text = sys.stdin.read() if args.resources == "-" else Path(args.resources).read_text()
        try:
            resources = json.loads(text)
        except ValueError as e:
            raise InvalidArgument(f"update: --resources: not JSON: {e}") from None
        if not isinstance(resources, dict):
            raise InvalidArgument("update: --resources: must be a JSON object (linux.resources)")
    for flag, section, key, kind in UPDATE_FLAGS:
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is None:
            continue
        if kind == "bytes":
            parsed = parse_bytes(value, flag)
        elif kind == "int":
            try:
                parsed = int(value)
            except ValueError:
                raise InvalidArgument(f"update: {flag}: not a number: {value!r}") from None
        else:
            parsed = value
        resources.setdefault(section, {})[key] = parsed
    if not resources:
        raise InvalidArgument("update: nothing to update (give --resources or a flag)")
    return resources


def _create(rt, args) -> int:
    state = rt.create(args.id, args.bundle, console_socket=args.console_socket,
                      no_pivot=args.no_pivot)
    if args.pid_file:
        tmp = Path(args.pid_file + ".tmp")
        tmp.write_text(str(state["pid"]))
        os.replace(tmp, args.pid_file)
    return 0


def _run(rt, args) -> int:
    if args.console_socket and not args.detach:
        # as runc: the terminal's master goes to the socket's owner, so
        # nobody would be left to wait for the container
        raise InvalidArgument("--console-socket: cannot use a console socket if the runtime "
                              "will not detach (--detach)")
    if not args.detach and not args.console_socket and _wants_terminal(args.bundle):
        return _run_with_terminal(rt, args)
    _create(rt, args)
    if args.detach:
        try:
            rt.start(args.id)
        except CrioNativeError:
            rt.delete(args.id, force=True)
            raise
        return 0
    try:
        rt.start(args.id)
        code = rt.wait(args.id)
    finally:
        rt.delete(args.id, force=True)
    return code if code is not None else 0


def _wants_terminal(bundle: str) -> bool:
    from crio_native.runtime.builtin.plan import load_spec
    return bool((load_spec(Path(bundle)).get("process") or {}).get("terminal"))


def _run_with_terminal(rt, args) -> int:
    """Foreground run of a terminal container: our own console socket gets
    the pty master, and we proxy it to our stdio until the container ends."""
    from crio_native.runtime import console_proxy

    with console_proxy.console_socket() as (path, server):
        args.console_socket = path
        try:
            _create(rt, args)
            master = console_proxy.receive_master(server)
        except BaseException:
            with contextlib.suppress(CrioNativeError):
                rt.delete(args.id, force=True)
            raise
    try:
        rt.start(args.id)
        console_proxy.proxy(master)
        code = rt.wait(args.id)
    finally:
        os.close(master)
        rt.delete(args.id, force=True)
    return code if code is not None else 0


def _exec(rt, args) -> int:
    """Like `runc exec`: the process runs attached, its exit code is ours."""
    if args.process:
        process = json.loads(Path(args.process).read_text())
    else:
        from crio_native.runtime.builtin.plan import load_spec
        spec = load_spec(Path(rt.state(args.id)["bundle"]))
        process = dict(spec.get("process") or {})
        if not args.args:
            raise InvalidArgument("exec: give the command to run or --process")
        process["args"] = args.args
    if args.cwd:
        process["cwd"] = args.cwd
    if args.env:
        process["env"] = list(process.get("env") or []) + args.env
    if args.user:
        uid, _, gid = args.user.partition(":")
        process["user"] = {"uid": int(uid), "gid": int(gid or 0)}
    pid = rt.exec(args.id, process)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) % 256 if os.WIFEXITED(status) \
        else 128 + os.WTERMSIG(status)


def _kill(rt, args) -> int:
    sig = parse_signal(args.signal)
    if args.all:
        rt.kill_all(args.id, sig)
    else:
        rt.kill(args.id, sig)
    return 0


def _ps(rt, args) -> int:
    """Like `runc ps`: json is the list of host pids; table is `ps`'s own
    output (default -ef) cut down to the container's processes."""
    pids = rt.ps(args.id)
    if args.format == "json":
        print(json.dumps(pids, separators=(",", ":")))
        return 0
    ps_args = args.ps_args or ["-ef"]
    out = subprocess.run(["ps", *ps_args], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    if not lines:
        return 0
    try:
        col = lines[0].split().index("PID")
    except ValueError:
        raise InvalidArgument("ps: the ps output has no PID column") from None
    print(lines[0])
    wanted = set(pids)
    for line in lines[1:]:
        fields = line.split(None, col + 1)
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in wanted:
            print(line)
    return 0


def _dispatch(rt, args) -> int:
    if args.command in ("create", "run"):
        return (_create if args.command == "create" else _run)(rt, args)
    if args.command == "start":
        rt.start(args.id)
    elif args.command == "pause":
        rt.pause(args.id)
    elif args.command == "resume":
        rt.resume(args.id)
    elif args.command == "state":
        print(json.dumps(rt.state(args.id), indent=2))
    elif args.command == "exec":
        return _exec(rt, args)
    elif args.command == "ps":
        return _ps(rt, args)
    elif args.command == "kill":
        return _kill(rt, args)
    elif args.command == "delete":
        rt.delete(args.id, force=args.force)
    elif args.command == "update":
        rt.update(args.id, update_resources(args))
    elif args.command == "features":
        from crio_native.runtime.builtin.features import features
        print(json.dumps(features(), indent=2))
    elif args.command == "list":
        for cid in rt.list():
            st = rt.state(cid)
            print(f"{cid}\t{st['pid']}\t{st['status']}\t{st['bundle']}")
    return 0


def _report(args, message: str) -> None:
    if args.log_format == "json":
        line = json.dumps({"level": "error", "msg": message,
                           "time": datetime.datetime.now(datetime.timezone.utc).isoformat()})
    else:
        line = f"crio-native-runtime: {message}"
    if args.log:
        with open(args.log, "a") as f:
            f.write(line + "\n")
    print(line if args.log_format == "text" else message, file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    from crio_native.runtime.builtin.container import BuiltinRuntime

    args = _parser().parse_args(argv)
    try:
        rt = BuiltinRuntime(args.root, cgroup_root=args.cgroup_root,
                            cgroup_driver="systemd" if args.systemd_cgroup else "cgroupfs")
        return _dispatch(rt, args)
    except (CrioNativeError, OSError) as e:
        _report(args, str(e))
        return 1


if __name__ == "__main__":
    sys.exit(main())
