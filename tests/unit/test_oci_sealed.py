"""runtime/oci/sealed.py: the runtime binary run from a sealed memfd copy
(so that `runc init` skips cloning itself), remade when the file changes,
old copies closed once no spawn uses them, and the file's own path
wherever no copy fits (a script, a missing file)."""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from crio_native.runtime.oci import sealed
from crio_native.runtime.oci.command import RuntimeCommand

READLINK = shutil.which("readlink") or "/bin/readlink"
ECHO = shutil.which("echo") or "/bin/echo"


def fd_of(path: str) -> int:
    assert path.startswith(f"/proc/{os.getpid()}/fd/"), path
    return int(path.rsplit("/", 1)[1])


@pytest.fixture
def binary(tmp_path) -> Path:
    path = tmp_path / "runtime"
    shutil.copy(READLINK, path)
    return path


def test_an_elf_runtime_runs_from_a_copy_with_runcs_seals(binary):
    with sealed.SealedBinary(str(binary)).executable() as exe:
        fd = fd_of(exe)
        assert fcntl.fcntl(fd, fcntl.F_GET_SEALS) == sealed.RUNC_SEALS
        assert os.fstat(fd).st_size == binary.stat().st_size
        with pytest.raises(PermissionError):          # F_SEAL_WRITE
            os.pwrite(fd, b"x", 0)
        out = subprocess.run([str(binary), "/proc/self/exe"], executable=exe,
                             capture_output=True, check=True).stdout.decode()
    assert out.startswith("/memfd:crio-native:runtime"), out


def test_one_copy_serves_every_call_while_the_file_is_unchanged(binary):
    sb = sealed.SealedBinary(str(binary))
    with sb.executable() as first:
        pass
    with sb.executable() as second:
        assert second == first
        os.fstat(fd_of(second))                  # still open between calls


def test_a_changed_file_gets_a_new_copy_and_the_old_one_closes_when_unused(binary):
    sb = sealed.SealedBinary(str(binary))
    with sb.executable() as old:
        old_fd = fd_of(old)
        replacement = binary.with_name("new")
        shutil.copy(ECHO, replacement)
        os.replace(replacement, binary)           # an upgrade: a new inode
        with sb.executable() as new:
            assert new != old
            out = subprocess.run([str(binary), "hello"], executable=new, capture_output=True,
                                 check=True).stdout
            assert out == b"hello\n"
        os.fstat(old_fd)                          # in use: still open
    with pytest.raises(OSError):
        os.fstat(old_fd)                          # closed once unused


def test_a_script_runs_from_its_path(tmp_path):
    script = tmp_path / "runtime"
    script.write_text("#!/bin/sh\necho \"$0\"\n")
    script.chmod(0o755)
    with sealed.SealedBinary(str(script)).executable() as exe:
        assert exe == str(script)


def test_a_missing_runtime_runs_from_its_path_and_fails_there(tmp_path):
    missing = str(tmp_path / "no-such-runc")
    with sealed.SealedBinary(missing).executable() as exe:
        assert exe == missing
        with pytest.raises(FileNotFoundError):
            subprocess.run([missing], executable=exe)


def test_no_sealing_means_the_path(binary, monkeypatch):
    def refuse(fd, cmd, arg=0):
        if cmd == fcntl.F_ADD_SEALS:
            raise PermissionError(1, "sealing refused")
        return fcntl.fcntl(fd, cmd, arg)
    monkeypatch.setattr(sealed.fcntl, "fcntl", refuse)
    with sealed.SealedBinary(str(binary)).executable() as exe:
        assert exe == str(binary)


def test_runtime_command_shares_one_copy_per_binary(binary, tmp_path):
    a = RuntimeCommand("a", str(binary), tmp_path / "a")
    b = RuntimeCommand("b", str(binary), tmp_path / "b")
    with a.executable() as exe_a, b.executable() as exe_b:
        assert exe_a == exe_b and exe_a != str(binary)
