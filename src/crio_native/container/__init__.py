"""Containers: records, the create/start/stop/remove lifecycle over a runtime
handler, the exit watcher and the event stream GetContainerEvents serves."""
