"""Handshakes whose path holds no identity (``/ocpp``, ``/CP-1``, ``/ocpp/CP-1/CP-1``), remembered
per source address and path with the identity the path most likely meant and the URL the
charger should use; bounded, and recorded in the event journal at a bounded rate.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote

from edgegw.config import CHARGER_ID_PATTERN
from edgegw.security.loggable import loggable
from edgegw.security.throttle import TokenBucket
from edgegw.store.events import EventRecorder
from edgegw.tasks import TaskOwner

# Handshakes refused for their URL: so many (source, path) pairs are kept, the oldest go first;
# so many new ones a minute (after a burst) reach the event journal.
MAX_WRONG_URLS: Final = 50


WRONG_URL_EVENTS_BURST: Final = 5


WRONG_URL_EVENTS_PER_MINUTE: Final = 5


_HOST_HEADER = re.compile(
    r"[A-Za-z0-9.\-]{1,253}(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?"
)


@dataclass(slots=True)
class WrongUrl:
    """Handshakes from one address to one path that holds no charger identity."""

    address: str
    path: str
    """As the charger sent it (printable, clipped)."""
    identity: str | None
    """The identity the path most likely meant (a configured one if any), or None."""
    configured: bool
    """Whether :attr:`identity` is a configured charger."""
    reason: str
    url: str
    """The URL the charger should use (the gateway's address it reached, the server's path)."""
    first_seen: float
    last_seen: float
    attempts: int = 1
    throttled: int = 0
    """Attempts answered HTTP 429 (the address was in failed-login back-off)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "path": self.path,
            "identity": self.identity,
            "configured": self.configured,
            "reason": self.reason,
            "url": self.url,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "attempts": self.attempts,
            "throttled": self.throttled,
        }


class WrongUrls:
    """Handshakes refused for their URL, per (source address, path), newest last.

    At most :data:`MAX_WRONG_URLS` are kept (the least recently seen go first), so a scan of
    made-up paths costs a bounded amount of memory; the first of each is recorded in the
    event journal (``handshake_refused``) at most :data:`WRONG_URL_EVENTS_PER_MINUTE` a
    minute after a burst. Nothing is written per attempt.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        record_event: EventRecorder | None,
        tasks: TaskOwner,
        size: int = MAX_WRONG_URLS,
    ) -> None:
        self._wall = wall_clock
        self._record = record_event
        self._tasks = tasks
        self._size = size
        self._events = TokenBucket(
            WRONG_URL_EVENTS_PER_MINUTE / 60, WRONG_URL_EVENTS_BURST, clock=clock
        )
        self._seen: OrderedDict[tuple[str, str], WrongUrl] = OrderedDict()

    def refused(
        self,
        address: str,
        raw_path: str,
        *,
        prefix: str,
        scheme: str,
        reached: str | None,
        configured: Callable[[str], bool],
    ) -> WrongUrl:
        """Count a refused handshake; returns its record (with the URL to use)."""
        now = self._wall()
        key = (address, raw_path[:300])
        entry = self._seen.get(key)
        if entry is not None:
            entry.attempts += 1
            entry.last_seen = now
            self._seen.move_to_end(key)
            return entry
        identity, reason = guess_identity(raw_path, prefix, configured)
        host = reached if reached and _HOST_HEADER.fullmatch(reached) else None
        url = f"{scheme}://{host or '<gateway address>'}{prefix}{identity or '<charger id>'}"
        entry = WrongUrl(
            address=address,
            path=loggable(raw_path, 200, quote=False),
            identity=identity,
            configured=identity is not None and configured(identity),
            reason=reason,
            url=url,
            first_seen=now,
            last_seen=now,
        )
        self._seen[key] = entry
        while len(self._seen) > self._size:
            self._seen.popitem(last=False)
        self._journal(entry)
        return entry

    def throttled(self, address: str, raw_path: str) -> None:
        """Count an attempt refused by the failed-login back-off (HTTP 429) on a known path."""
        entry = self._seen.get((address, raw_path[:300]))
        if entry is not None:
            entry.attempts += 1
            entry.throttled += 1
            entry.last_seen = self._wall()

    def entries(self) -> list[WrongUrl]:
        """Newest first."""
        return list(reversed(self._seen.values()))

    def _journal(self, entry: WrongUrl) -> None:
        record = self._record
        if record is None or self._events.try_take() > 0:
            return
        who = entry.identity or "a charger"
        message = (
            f"refused {who} from {entry.address}: {entry.reason}; set its OCPP server URL "
            f"to {entry.url}"
        )
        self._tasks.spawn(self._write(record, message, entry), "wrong-url-event")

    @staticmethod
    async def _write(record: EventRecorder, message: str, entry: WrongUrl) -> None:
        await record(
            "handshake_refused",
            message,
            charger_id=entry.identity if entry.configured else None,
            data=entry.as_dict(),
        )


def guess_identity(
    raw_path: str, prefix: str, configured: Callable[[str], bool]
) -> tuple[str | None, str]:
    """The identity a path that holds none most likely meant, and what is wrong with it.

    ``/CP-1`` (no server path) means ``CP-1``; ``/ocpp/CP-1/CP-1`` (the identity twice, a
    charger that appends its id to a URL that has it) means ``CP-1``; ``/ocpp`` means none.
    A configured identity among the path's parts is preferred.
    """
    path = unquote(raw_path.split("?", 1)[0])
    parts = [p for p in path.split("/") if p]
    server_parts = {p for p in prefix.split("/") if p}
    names = [p for p in parts if CHARGER_ID_PATTERN.match(p) and p not in server_parts]
    guess = next((n for n in reversed(names) if configured(n)), names[-1] if names else None)
    if not path.startswith(prefix):
        if prefix.rstrip("/") == path.rstrip("/"):
            reason = f"no charger identity after {prefix}"
        else:
            reason = f"the path is not under {prefix}"
    elif not path[len(prefix) :]:
        reason = f"no charger identity after {prefix}"
    else:
        reason = (
            f"{loggable(path[len(prefix) :], 60)} is not a charger identity (one path part of "
            "1-48 letters, digits and . _ - * + = | @ ~)"
        )
    return guess, reason
