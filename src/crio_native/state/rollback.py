"""The undo steps of a create (DESIGN.md invariant 3): each logs its own
failure and notes it, so the rollback goes on and the record stays visible."""
from __future__ import annotations

import logging
from typing import Any, Callable

from crio_native.logsetup import fields

log = logging.getLogger(__name__)


def undo_step(failed: list[str], what: str, action: Callable[[], None]) -> None:
    try:
        action()
    except Exception:  # noqa: BLE001 - logged, and the record stays visible
        log.error("rollback step failed", exc_info=True, extra=fields(step=what))
        failed.append(what)


def forget_unless_failed(store: Any, record: Any, failed: list[str]) -> None:
    """The last undo of a failed create: drop the record only if everything
    else was undone; otherwise keep it (state creating) so the leftovers stay
    visible and the next start-up tries the teardown again."""
    if failed:
        log.error(f"{store.kind} only partly rolled back",
                  extra=fields(id=record.id, failed=",".join(failed)))
        store.save(record)
    else:
        store.drop(record)


def save_state(store: Any, record: Any, state: str, before: str,
               durable: bool = True) -> None:
    """Move the record to `state` and save it; if the save fails, the record
    goes back to `before`, so the rollback's own saves (and a record kept
    after a failed undo) never claim the state that was not reached."""
    record.state = state
    try:
        store.save(record, durable=durable)
    except BaseException:
        record.state = before
        raise
