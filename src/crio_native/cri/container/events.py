"""GetContainerEvents: a stream of created/started/stopped/deleted events,
each with its pod's status and the statuses of the pod's containers (what the
kubelet's Evented PLEG reads instead of relisting)."""
from __future__ import annotations

from typing import Iterator

from crio_native._proto import api_pb2
from crio_native.container import events
from crio_native.context import DaemonContext, containers_of, sandboxes_of
from crio_native.cri.container import convert
from crio_native.cri.sandbox import convert as sandbox_convert

EVENT_TYPES = {events.CREATED: api_pb2.CONTAINER_CREATED_EVENT,
               events.STARTED: api_pb2.CONTAINER_STARTED_EVENT,
               events.STOPPED: api_pb2.CONTAINER_STOPPED_EVENT,
               events.DELETED: api_pb2.CONTAINER_DELETED_EVENT}
POLL_SECONDS = 1.0   # how often a quiet stream checks that its client is still there


def event_message(ctx: DaemonContext, event: events.ContainerEvent
                  ) -> api_pb2.ContainerEventResponse:
    response = api_pb2.ContainerEventResponse(
        container_id=event.container_id, container_event_type=EVENT_TYPES[event.kind],
        created_at=event.created_at)
    sandbox = sandboxes_of(ctx).store.find(event.sandbox_id)
    if sandbox is not None:
        response.pod_sandbox_status.CopyFrom(sandbox_convert.status(sandbox))
    response.containers_statuses.extend(convert.pod_container_statuses(ctx.containers,
                                                                      event.sandbox_id))
    return response


def get_container_events(ctx: DaemonContext, request: api_pb2.GetEventsRequest,
                         context) -> Iterator[api_pb2.ContainerEventResponse]:
    sub = containers_of(ctx).events.subscribe()
    context.add_callback(sub.cancel)
    try:
        while context.is_active() and not sub.closed:
            event = sub.next(POLL_SECONDS)
            if event is not None:
                yield event_message(ctx, event)
    finally:
        sub.cancel()
