import threading

import pytest

from crio_native import failpoints, steps


def test_steps_are_recorded_in_the_traced_thread_only():
    seen = []
    with steps.tracing("RuntimeService.RunPodSandbox", "ns/a/u/0") as trace:
        failpoints.hit("sandbox.run.reserved")
        other = threading.Thread(target=lambda: failpoints.hit("sandbox.run.directory"))
        other.start()
        other.join()
        steps.reached("sandbox.run.pinned")
        seen = [name for name, _ in trace.steps]
    assert seen == ["sandbox.run.reserved", "sandbox.run.pinned"]
    steps.reached("sandbox.run.ready")          # no trace open: nothing, no error
    assert [name for name, _ in trace.steps] == seen


def test_durations_run_from_the_previous_step():
    trace = steps.Trace("r", "k", started=10.0)
    trace.steps = [("a", 10.5), ("b", 12.0)]
    assert trace.durations() == [("a", 0.5), ("b", 1.5)]
    assert trace.last() == ("b", 12.0)
    assert steps.Trace("r", "k", started=3.0).last() == (steps.START, 3.0)


def test_in_progress_finds_the_oldest_other_call():
    with steps.tracing("RuntimeService.CreateContainer", "pod/c/0") as first:
        with steps.tracing("RuntimeService.CreateContainer", "pod/c/0") as retry:
            assert steps.in_progress("RuntimeService.CreateContainer", "pod/c/0",
                                     but=retry) is first
            assert steps.in_progress("RuntimeService.CreateContainer", "pod/d/0") is None
    assert steps.in_progress("RuntimeService.CreateContainer", "pod/c/0") is None


def test_stalled_note_names_the_last_step():
    trace = steps.Trace("r", "k", started=100.0)
    assert "has not passed its first step" in steps.stalled_note(trace, now=101.0)
    trace.steps = [("container.create.rootfs", 102.0)]
    note = steps.stalled_note(trace, now=130.0)
    assert "started 30.0 s ago" in note
    assert "passed step 'container.create.rootfs' 28.0 s ago" in note


@pytest.mark.parametrize("remaining, budget", [(None, 240.0), (10.0, 9.0), (0.5, 0.0)])
def test_wait_budget_ends_before_the_clients_deadline(remaining, budget):
    assert steps.wait_budget(240.0) == 240.0      # outside any call
    with steps.tracing("r", "k", remaining):
        assert steps.wait_budget(240.0) == pytest.approx(budget, abs=0.05)
