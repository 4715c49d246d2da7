"""The metric families ListMetricDescriptors describes and
ListPodSandboxMetrics fills: cAdvisor's names, help and label keys, as the
kubelet's CRI metrics collector turns them into its /metrics/cadvisor
series (one Prometheus descriptor per family, label values in label_keys
order).  Grouped as CRI-O's `included_pod_metrics` groups them;
container_last_seen belongs to no group and is always there.

Values are UInt64 in the CRI: seconds are whole seconds (as CRI-O sends
them), bytes and counts are exact."""
from __future__ import annotations

from dataclasses import dataclass

from crio_native._proto import api_pb2

# every sample: the container's id, its name in the pod spec, its image
# (the pod's own network samples: the pod id, "POD", "")
BASE_LABELS = ("id", "name", "image")
COUNTER, GAUGE = api_pb2.COUNTER, api_pb2.GAUGE


@dataclass(frozen=True)
class Family:
    name: str
    help: str
    group: str                      # an included_pod_metrics group; "" for always
    type: "api_pb2.MetricType"      # COUNTER or GAUGE
    extra_labels: tuple[str, ...] = ()

    @property
    def label_keys(self) -> tuple[str, ...]:
        return BASE_LABELS + self.extra_labels

    def descriptor(self) -> api_pb2.MetricDescriptor:
        return api_pb2.MetricDescriptor(name=self.name, help=self.help,
                                        label_keys=list(self.label_keys))


def _f(name: str, help: str, group: str, type: "api_pb2.MetricType", *extra: str) -> Family:
    return Family(name, help, group, type, extra)


FAMILIES: tuple[Family, ...] = (
    _f("container_last_seen", "Last time a container was seen by the exporter (unix "
       "seconds).", "", GAUGE),
    # cpu
    _f("container_cpu_user_seconds_total", "Cumulative user CPU time consumed in seconds.",
       "cpu", COUNTER),
    _f("container_cpu_system_seconds_total", "Cumulative system CPU time consumed in "
       "seconds.", "cpu", COUNTER),
    _f("container_cpu_usage_seconds_total", "Cumulative CPU time consumed in seconds.",
       "cpu", COUNTER, "cpu"),
    _f("container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.",
       "cpu", COUNTER),
    _f("container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.",
       "cpu", COUNTER),
    _f("container_cpu_cfs_throttled_seconds_total", "Total time duration the container has "
       "been throttled.", "cpu", COUNTER),
    # memory
    _f("container_memory_cache", "Number of bytes of page cache memory.", "memory", GAUGE),
    _f("container_memory_rss", "Size of RSS in bytes.", "memory", GAUGE),
    _f("container_memory_kernel_usage", "Size of kernel memory allocated in bytes.",
       "memory", GAUGE),
    _f("container_memory_mapped_file", "Size of memory mapped files in bytes.", "memory",
       GAUGE),
    _f("container_memory_swap", "Container swap usage in bytes.", "memory", GAUGE),
    _f("container_memory_failcnt", "Number of memory usage hits limits.", "memory", COUNTER),
    _f("container_memory_usage_bytes", "Current memory usage in bytes, including all memory "
       "regardless of when it was accessed.", "memory", GAUGE),
    _f("container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes.",
       "memory", GAUGE),
    _f("container_memory_working_set_bytes", "Current working set in bytes.", "memory",
       GAUGE),
    _f("container_memory_failures_total", "Cumulative count of memory allocation failures.",
       "memory", COUNTER, "failure_type", "scope"),
    # network (the pod's namespace: pod-level samples)
    *(_f(f"container_network_{name}_total", f"Cumulative count of {text}.", "network",
         COUNTER, "interface")
      for name, text in (
          ("receive_bytes", "bytes received"), ("receive_packets", "packets received"),
          ("receive_packets_dropped", "packets dropped while receiving"),
          ("receive_errors", "errors encountered while receiving"),
          ("transmit_bytes", "bytes transmitted"),
          ("transmit_packets", "packets transmitted"),
          ("transmit_packets_dropped", "packets dropped while transmitting"),
          ("transmit_errors", "errors encountered while transmitting"))),
    # disk (the container's root filesystem)
    _f("container_fs_inodes_free", "Number of available inodes.", "disk", GAUGE),
    _f("container_fs_inodes_total", "Number of inodes.", "disk", GAUGE),
    _f("container_fs_limit_bytes", "Number of bytes that can be consumed by the container "
       "on this filesystem.", "disk", GAUGE),
    _f("container_fs_usage_bytes", "Number of bytes that are consumed by the container on "
       "this filesystem.", "disk", GAUGE),
    # process
    _f("container_processes", "Number of processes running inside the container.",
       "process", GAUGE),
    _f("container_threads", "Number of threads running inside the container.", "process",
       GAUGE),
    _f("container_threads_max", "Maximum number of threads allowed inside the container, "
       "infinity if value is zero.", "process", GAUGE),
    _f("container_file_descriptors", "Number of open file descriptors for the container.",
       "process", GAUGE),
    _f("container_sockets", "Number of open sockets for the container.", "process", GAUGE),
    _f("container_ulimits_soft", "Soft ulimit values for the container root process "
       "(unlimited ones are left out).", "process", GAUGE, "ulimit"),
    # hugetlb
    _f("container_hugetlb_usage_bytes", "Current hugepage usage in bytes.", "hugetlb", GAUGE,
       "pagesize"),
    _f("container_hugetlb_max_usage_bytes", "Maximum hugepage usage recorded in bytes.",
       "hugetlb", GAUGE, "pagesize"),
    # oom
    _f("container_oom_events_total", "Count of out of memory events observed for the "
       "container.", "oom", COUNTER),
)
BY_NAME = {f.name: f for f in FAMILIES}


def families_of(groups: tuple[str, ...] | list[str]) -> list[Family]:
    """The families the configured groups report, container_last_seen first."""
    return [f for f in FAMILIES if not f.group or f.group in groups]
