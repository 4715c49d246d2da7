from __future__ import annotations

import shutil

import pytest

from tests.e2e.daemon import Daemon


@pytest.fixture
def daemon_factory(tmp_path):
    """Start daemons on private sockets; every one is stopped at teardown."""
    started: list[Daemon] = []

    def make(*extra_args: str, base=None, listen=None) -> Daemon:
        d = Daemon(base or tmp_path / f"d{len(started)}", list(extra_args), listen)
        started.append(d)
        return d

    yield make
    for d in started:
        d.stop()


@pytest.fixture
def daemon(daemon_factory) -> Daemon:
    return daemon_factory().start()


# The runtime handlers e2e tests run a container with: the built-in runtime
# and runc as the oracle (Debian's crun cannot run on a hybrid-cgroup host).
HANDLERS = ["builtin", "runc"]


@pytest.fixture(params=HANDLERS)
def handler(request) -> str:
    if request.param == "runc" and shutil.which("runc") is None:
        pytest.skip("runc is not installed")
    return request.param
