"""The daemon's local control API: JSON lines on a Unix socket for the CLI and the TUI.

The daemon owns a :class:`ControlServer` and registers its operations on it; the CLI uses
:func:`call_sync`, the TUI a :class:`ControlClient`. The wire format is in
:mod:`edgegw.control.protocol`.
"""

from edgegw.control.client import (
    ConnectionLost,
    ControlClient,
    ControlClientError,
    ControlTimeout,
    DaemonNotRunning,
    PermissionDenied,
    ProtocolError,
    RemoteError,
    call_sync,
)
from edgegw.control.protocol import ControlError, ErrorCode, Event, get_arg
from edgegw.control.server import (
    AnotherInstanceRunning,
    ControlServer,
    ControlSocketError,
    Handler,
)

__all__ = [
    "AnotherInstanceRunning",
    "ConnectionLost",
    "ControlClient",
    "ControlClientError",
    "ControlError",
    "ControlServer",
    "ControlSocketError",
    "ControlTimeout",
    "DaemonNotRunning",
    "ErrorCode",
    "Event",
    "Handler",
    "PermissionDenied",
    "ProtocolError",
    "RemoteError",
    "call_sync",
    "get_arg",
]
