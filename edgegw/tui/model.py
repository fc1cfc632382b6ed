"""The site as the screens see it: the daemon's own snapshot types, read strictly.

The TUI ships in the same wheel as the daemon, so it reads ``live.snapshot`` (and the ``live``
topic, which carries the same document) with the daemon's definition,
:meth:`edgegw.live.snapshot.LiveSnapshot.from_dict`. A document of another shape means the TUI
and the daemon are different versions (one was updated, the other not restarted): the screens
say so once, in words (:func:`mismatch_text`), instead of guessing at fields.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edgegw import __version__
from edgegw.live.snapshot import (
    ChargerLive,
    ConnectorLive,
    LiveSnapshot,
    MeterLive,
    Phases,
    SessionLive,
    SiteLive,
    SnapshotMismatch,
)
from edgegw.tui.history import LoadHistory

__all__ = [
    "ChargerLive",
    "ConnectorLive",
    "LiveSnapshot",
    "MeterLive",
    "Phases",
    "SessionLive",
    "SiteData",
    "SiteLive",
    "SnapshotMismatch",
    "mismatch_text",
    "read_snapshot",
]


def read_snapshot(data: Any) -> LiveSnapshot:
    """A ``live.snapshot`` answer (or ``live`` event); raises :class:`SnapshotMismatch`."""
    return LiveSnapshot.from_dict(data)


def mismatch_text(problem: str, daemon_version: str | None) -> str:
    """What the caretaker reads when the daemon's snapshot is not this TUI's."""
    daemon = f"edgegw {daemon_version}" if daemon_version else "the running edgegw"
    return (
        f"This TUI (edgegw {__version__}) and the daemon ({daemon}) are different versions: "
        "restart the daemon (`systemctl restart edgegw`) after an update, then this TUI. "
        f"({problem})"
    )


@dataclass(slots=True)
class SiteData:
    """Everything the screens show that outlives one screen: the newest snapshot, the live
    events seen, and the load history kept while the TUI runs."""

    snapshot: LiveSnapshot | None = None
    updated_at: float | None = None
    live_events: deque[Mapping[str, Any]] = field(default_factory=lambda: deque(maxlen=500))
    history: LoadHistory = field(default_factory=LoadHistory)
    version: str | None = None
    mismatch: str | None = None
    """Why the daemon's snapshot could not be read (a version mismatch), in words."""

    def add_event(self, event: Mapping[str, Any]) -> None:
        self.live_events.append(event)
