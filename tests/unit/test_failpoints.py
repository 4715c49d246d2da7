"""crio_native.failpoints: the test-only setting is parsed strictly (a typo
must not make a crash test pass without crashing), costs nothing unset, and
acts only at the armed name."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from crio_native import failpoints
from crio_native.errors import ErrorKind


@pytest.fixture(autouse=True)
def disarmed():
    failpoints.disarm()
    yield
    failpoints.disarm()


def test_the_catalogue_names_each_point_once_under_its_operation():
    assert len(set(failpoints.NAMES)) == len(failpoints.NAMES)
    for operation, names in failpoints.CATALOGUE.items():
        assert names and all(n.startswith(operation + ".") for n in names)
    assert set(failpoints.CATALOGUE) == {
        "sandbox.run", "sandbox.stop", "sandbox.remove", "container.create",
        "container.start", "container.stop", "container.remove"}


def test_parse_takes_a_list_of_name_action_pairs():
    armed = failpoints.parse(" sandbox.run.reserved=kill, container.start.done=error ,")
    assert sorted(armed) == ["container.start.done", "sandbox.run.reserved"]
    assert failpoints.parse("") == {}


@pytest.mark.parametrize("spec", ["sandbox.run.reserved", "sandbox.run.reservd=kill",
                                  "sandbox.run.reserved=explode", "=kill"])
def test_parse_refuses_what_it_cannot_use(spec):
    with pytest.raises(ValueError, match="CRIO_NATIVE_FAILPOINTS"):
        failpoints.parse(spec)


def test_an_unarmed_point_does_nothing_and_an_armed_one_acts_there_only():
    failpoints.hit("sandbox.run.reserved")
    failpoints.arm("sandbox.run.reserved", "error")
    failpoints.hit("sandbox.run.directory")
    with pytest.raises(failpoints.FailpointError) as e:
        failpoints.hit("sandbox.run.reserved")
    assert e.value.name == "sandbox.run.reserved" and e.value.kind == ErrorKind.INTERNAL
    failpoints.disarm("sandbox.run.reserved")
    failpoints.hit("sandbox.run.reserved")
    with pytest.raises(ValueError):
        failpoints.arm("no.such.point", "error")


def test_the_environment_is_read_at_import_and_kill_is_sigkill():
    code = ("from crio_native import failpoints; failpoints.hit('sandbox.run.directory'); "
            "print('passed', flush=True); failpoints.hit('sandbox.run.reserved'); "
            "print('survived', flush=True)")
    env = {**os.environ, failpoints.ENV: "sandbox.run.reserved=kill"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60)
    assert (done.returncode, done.stdout) == (-9, "passed\n")

    env[failpoints.ENV] = "sandbox.run.typo=kill"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1 and "sandbox.run.typo=kill" in done.stderr
