"""What every caretaker screen shares: the daemon, the site data, the clock, the glyphs.

Screens receive a :class:`TuiContext` instead of reaching for the app, so they can be built
and tested on their own, and so "may this person act?" is answered in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path

from edgegw.tasks import TaskOwner
from edgegw.tui.link import Backend
from edgegw.tui.model import SiteData
from edgegw.tui.text import Glyphs

READ_ONLY_REASON = "read-only mode: this screen may look, not act"
NOT_ADMIN_REASON = (
    "this user may only look: changes need root or the edgegw user "
    "(or run `edgegw tui` as that user)"
)


@dataclass(slots=True)
class TuiContext:
    backend: Backend
    data: SiteData
    clock: Callable[[], float]
    tz: tzinfo | None
    glyphs: Glyphs
    read_only: bool
    tasks: TaskOwner
    export_dir: Path

    def may(self, op: str) -> bool:
        """Whether actions that need ``op`` are offered at all (hidden otherwise)."""
        return not self.read_only and self.backend.allowed(op)

    def why_not(self, op: str) -> str | None:
        """Why ``op`` cannot be run now, in words; None when it can."""
        if self.read_only:
            return READ_ONLY_REASON
        if not self.backend.has(op):
            return f"not available in this daemon version (no {op!r} op); update edgegw"
        if not self.backend.allowed(op):
            return NOT_ADMIN_REASON
        return None

    @property
    def view_only(self) -> bool:
        """No action can be taken: read-only mode, or a user without admin rights."""
        return self.read_only or not self.backend.admin
