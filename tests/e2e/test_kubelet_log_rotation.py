"""Log rotation as the kubelet's container log manager does it: the live
log renamed to <log>.<timestamp>, ReopenContainerLog, older rotated files
gzipped; while the container writes as fast as it can, no line is lost,
none is doubled and the order across the files is kept."""
from __future__ import annotations

import datetime
import time
from pathlib import Path

import grpc
import pytest

from tests.e2e.kubelet import Container, Pod, log_lines
from tests.e2e.kubelet import kubelet, node  # noqa: F401
from tests.fixtures.registry import registry  # noqa: F401

pytestmark = pytest.mark.root

# numbered lines in bursts, on stdout and stderr; TERM ends it after a last line
WRITER = ("trap 'echo end; exit 0' TERM; i=0; while :; do j=0; "
          "while [ $j -lt 50 ]; do i=$((i+1)); j=$((j+1)); echo $i; done; "
          "echo err$i >&2; sleep 0.01; done")
ROTATIONS = 4


def test_rotation_loses_no_line(kubelet):
    k = kubelet
    pod = Pod("logs", [Container("writer", ["sh", "-c", WRITER])], grace_period=10)
    pod_id = k.run_pod(pod)
    writer = k.start(pod_id, pod.containers[0])
    log = k.wait_log(writer.id, " F 50\n")
    clock = datetime.datetime(2030, 1, 2, 3, 4, 5)
    rotated = []
    for _ in range(ROTATIONS):
        time.sleep(0.3)
        clock += datetime.timedelta(seconds=10)     # ContainerLogMonitorInterval
        rotated.append(k.rotate_log(writer.id, clock))
        assert log.exists()                         # reopened at once
    time.sleep(0.3)
    k.stop(writer.id, pod.grace_period)
    st = k.status(writer.id).status
    assert (st.exit_code, st.reason) == (0, "Completed")

    files = sorted(log.parent.glob(f"{log.name}.*"))
    # all but the newest rotated file compressed, as the kubelet leaves them
    assert [f.name for f in files] == [f"{r.name}.gz" for r in rotated[:-1]] + [rotated[-1].name]
    lines = [line for f in [*files, log] for line in log_lines(f)]
    stdout = [text for stream, _tag, text in lines if stream == "stdout"]
    stderr = [text for stream, _tag, text in lines if stream == "stderr"]
    assert all(tag == "F" for _s, tag, _t in lines)
    assert stdout[-1] == "end"
    numbers = [int(t) for t in stdout[:-1]]
    assert numbers == list(range(1, len(numbers) + 1)), "a line was lost, doubled or moved"
    assert len(numbers) > 1000
    errs = [int(t[3:]) for t in stderr]
    assert errs == list(range(50, 50 * len(errs) + 1, 50))
    for f in files:                                 # every file got its share
        assert log_lines(f), f"{f} is empty"
    assert log_lines(log)

    # a stopped container's log cannot be reopened: the kubelet renames it back
    with pytest.raises(grpc.RpcError):
        k.rotate_log(writer.id, clock + datetime.timedelta(seconds=10))
    assert log.exists() and log_lines(log)[-1] == ("stdout", "F", "end")
    assert len(list(log.parent.glob(f"{log.name}.*"))) == ROTATIONS
    k.remove_pod(pod_id)
    assert not Path(st.log_path).exists()
