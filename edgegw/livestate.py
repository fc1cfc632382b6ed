"""The live state's names where they always were; the code is in :mod:`edgegw.live`.

:mod:`edgegw.live.state` holds :class:`LiveState`, :mod:`edgegw.live.snapshot` the snapshot
types (shared with the TUI), :mod:`edgegw.live.changes` what listeners are told.
"""

from edgegw.live.changes import ChangeListener, EventKind, LiveChange, LiveEvent, Scope
from edgegw.live.site import GatewayParts, link_state
from edgegw.live.snapshot import (
    CHARGER_STATUSES,
    STATUS_ORDER,
    ChargerLive,
    ConnectorLive,
    LiveSnapshot,
    MeterLive,
    Phases,
    SessionLive,
    SiteLive,
    SnapshotMismatch,
    to_json,
)
from edgegw.live.state import LiveState, OwnerLookup

__all__ = [
    "CHARGER_STATUSES",
    "STATUS_ORDER",
    "ChangeListener",
    "ChargerLive",
    "ConnectorLive",
    "EventKind",
    "GatewayParts",
    "LiveChange",
    "LiveEvent",
    "LiveSnapshot",
    "LiveState",
    "MeterLive",
    "OwnerLookup",
    "Phases",
    "Scope",
    "SessionLive",
    "SiteLive",
    "SnapshotMismatch",
    "link_state",
    "to_json",
]
