"""The shape of :meth:`edgegw.store.store.Store.event`, for parts that record events.

Parts that only record events (the meter-sampling set-up, the certificate watch) take a
callable of this shape rather than the whole store, so their tests can pass a list.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Protocol


class EventRecorder(Protocol):
    """Records something a caretaker should see: ``Store.event``'s signature."""

    def __call__(
        self,
        kind: str,
        message: str,
        *,
        charger_id: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> Awaitable[None]: ...
