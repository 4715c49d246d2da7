"""Build of crio-native's compiled core and generated CRI stubs.

Cython modules live in src/crio_native/_native/*.pyx; the C they wrap lives in
src/_native/.  The CRI stubs are generated from proto/runtime/v1/api.proto into
src/crio_native/_proto/ on every build (they are never edited by hand)."""
import os
import subprocess
import sys
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
C_DIR = "src/_native"
PROTO = HERE / "proto" / "runtime" / "v1" / "api.proto"
PROTO_OUT = HERE / "src" / "crio_native" / "_proto"

# module -> the C files (beside error.c) it needs and the libraries it links.
NATIVE_MODULES = {
    "ns": (["ns.c"], []),
    "proc": (["proc.c"], []),
    "mount": (["mnt.c"], []),
    "seccomp": ([], ["seccomp"]),
    "selinux": ([], ["selinux"]),
    "launch": (["fmt.c", "plan.c", "launch.c", "sync.c", "mounts.c", "msmove.c", "caps.c",
                "creds.c", "nsjoin.c", "sysctl.c", "rlimit.c", "tty.c", "exec.c", "hooks.c",
                "seccomp.c", "landlock.c", "launchspawn.c"], []),
    "bpf": (["bpf.c"], []),
    # the libcrypto Python's _hashlib/_ssl already map (docs/memory.md)
    "ed25519": (["ed25519.c"], ["crypto"]),
}


def generate_cri_stubs():
    """Run grpcio-tools' protoc; the virtual include path makes the generated
    code import itself as crio_native._proto.api_pb2."""
    PROTO_OUT.mkdir(parents=True, exist_ok=True)
    init = PROTO_OUT / "__init__.py"
    if not init.exists():
        init.write_text('"""Generated CRI runtime.v1 stubs (build output)."""\n')
    stamp = PROTO_OUT / "api_pb2.py"
    if stamp.exists() and stamp.stat().st_mtime >= PROTO.stat().st_mtime:
        return
    cmd = [
        sys.executable, "-m", "grpc_tools.protoc",
        f"-Icrio_native/_proto={PROTO.parent}",
        f"--python_out={HERE / 'src'}",
        f"--pyi_out={HERE / 'src'}",
        f"--grpc_python_out={HERE / 'src'}",
        "crio_native/_proto/api.proto",
    ]
    subprocess.run(cmd, check=True)


SHIM_PROTO = HERE / "proto" / "shim"
SHIM_PROTOS = ["ttrpc.proto", "v2/task.proto", "cgroups/v1/metrics.proto",
               "cgroups/v2/metrics.proto"]


def generate_shim_stubs():
    """The ttrpc envelope and the shim v2 task messages (proto/shim/), the
    same way: importable as crio_native._proto.shim.ttrpc_pb2,
    crio_native._proto.shim.v2.task_pb2 and the cgroups metrics the task's
    Stats answers with, crio_native._proto.shim.cgroups.v1.metrics_pb2 (and
    v2).  Messages only (ttrpc, not gRPC)."""
    out = PROTO_OUT / "shim"
    for pkg in (out, out / "v2", out / "cgroups", out / "cgroups" / "v1",
                out / "cgroups" / "v2"):
        pkg.mkdir(parents=True, exist_ok=True)
        if not (pkg / "__init__.py").exists():
            (pkg / "__init__.py").write_text('"""Generated shim v2 stubs (build output)."""\n')
    sources = [SHIM_PROTO / name for name in SHIM_PROTOS]
    stamps = [out / name.replace(".proto", "_pb2.py") for name in SHIM_PROTOS]
    if all(st.exists() and st.stat().st_mtime >= src.stat().st_mtime
           for st, src in zip(stamps, sources)):
        return
    cmd = [
        sys.executable, "-m", "grpc_tools.protoc",
        f"-Icrio_native/_proto/shim={SHIM_PROTO}",
        f"--python_out={HERE / 'src'}",
        f"--pyi_out={HERE / 'src'}",
    ] + [f"crio_native/_proto/shim/{name}" for name in SHIM_PROTOS]
    subprocess.run(cmd, check=True)


class BuildPyWithStubs(build_py):
    def run(self):
        generate_cri_stubs()
        generate_shim_stubs()
        super().run()


BIN_DIR = HERE / "src" / "crio_native" / "_bin"


def build_executable(name: str, sources: list[Path], headers: list[Path],
                     extra_args: tuple[str, ...] = ()) -> None:
    """Compile a plain C executable (no Python in it) into crio_native/_bin/,
    shipped as package data; rebuilt when any input is newer than it."""
    target = BIN_DIR / name
    if target.exists() and all(target.stat().st_mtime >= f.stat().st_mtime
                               for f in sources + headers):
        return
    BIN_DIR.mkdir(parents=True, exist_ok=True)
    cc = os.environ.get("CC", "cc")
    tmp = target.with_name(name + ".tmp")
    cmd = [cc, "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-D_FORTIFY_SOURCE=2",
           *extra_args, "-o", str(tmp)] + [str(f) for f in sources]
    subprocess.run(cmd, check=True)
    # a rename, so running copies keep their binary (no ETXTBSY)
    os.replace(tmp, target)


# The monitor (--plan) and the launcher clone the built-in runtime's
# containers themselves: they link the same child path as the `launch`
# module.  The plan carries the seccomp BPF already compiled, so neither
# libseccomp nor libselinux is linked.
LAUNCH_CORE = ["error.c", "fmt.c", "proc.c", "plan.c", "launch.c", "sync.c", "mounts.c",
               "msmove.c", "caps.c", "creds.c", "nsjoin.c", "sysctl.c", "rlimit.c", "tty.c",
               "exec.c", "hooks.c", "seccomp.c", "landlock.c"]


def build_executables() -> None:
    monitor = HERE / C_DIR / "monitor"
    # static: no dynamic loader at each container's start, fewer resident
    # pages, and one text shared by all the node's monitors (docs/monitor.md)
    build_executable(
        "crio-native-monitor",
        sorted(monitor.glob("*.c")) + [HERE / C_DIR / n for n in LAUNCH_CORE],
        sorted(monitor.glob("*.h")) + sorted((HERE / C_DIR).glob("*.h")), ("-static",))
    # The launcher (launcher.h) is exec'd for every container and exec the
    # daemon and the CLI start: static, so its exec costs no dynamic linking.
    build_executable(
        "crio-native-launch",
        [HERE / C_DIR / "launcher" / "main.c", HERE / C_DIR / "launchspawn.c"]
        + [HERE / C_DIR / n for n in LAUNCH_CORE],
        sorted((HERE / C_DIR).glob("*.h")), ("-static",))
    # The pod infra process runs alone in an empty root: static.
    build_executable("crio-native-pause", [HERE / C_DIR / "pause" / "pause.c"], [],
                     ("-static",))
    # One relay per vm-handler container, beside its monitor: static for the
    # same reasons as the monitor (docs/containers.md, "vm handlers").
    relay = HERE / C_DIR / "shimrelay"
    build_executable(
        "crio-native-shim-relay", sorted(relay.glob("*.c")) + [HERE / C_DIR / "error.c"],
        sorted(relay.glob("*.h")) + [HERE / C_DIR / "error.h"], ("-static",))


def native_extensions():
    exts = []
    for name, (sources, libraries) in NATIVE_MODULES.items():
        exts.append(
            Extension(
                f"crio_native._native.{name}",
                sources=[f"src/crio_native/_native/{name}.pyx", f"{C_DIR}/error.c"]
                + [f"{C_DIR}/{src}" for src in sources],
                include_dirs=[C_DIR],
                libraries=libraries,
                extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter",
                                    "-Wno-unused-function"],
            )
        )
    return cythonize(
        exts,
        compiler_directives={"language_level": "3", "embedsignature": True},
        include_path=["src"],
        quiet=True,
    )


generate_cri_stubs()
generate_shim_stubs()
build_executables()
os.chdir(HERE)
setup(ext_modules=native_extensions(), cmdclass={"build_py": BuildPyWithStubs})
