"""The caretaker terminal UI (``edgegw tui``): the site at a glance, and the few actions a
caretaker needs, on the box's screen or over SSH. A thin client of the daemon's control
socket; see :mod:`edgegw.tui.app`."""

from edgegw.tui.app import CaretakerApp
from edgegw.tui.link import Backend, DaemonLink, LinkState

__all__ = ["Backend", "CaretakerApp", "DaemonLink", "LinkState"]
