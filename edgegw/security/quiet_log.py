"""Log lines that an attacker cannot multiply.

Every refusal deserves a clear log line, but a flood of refusals must not flood the journal (or
wear out the SD card of a Raspberry Pi). :class:`QuietLog` writes the first occurrence of each
kind at once and then at most one line per interval, saying how many were left out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

_SUPPRESSED = " (%d more like this in the last %.0f s)"


class QuietLog:
    """At most one line per ``key`` per ``interval`` seconds, with a count of the rest."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval: float = 60.0,
        max_keys: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._interval = interval
        self._max_keys = max_keys
        self._clock = clock
        self._last: dict[str, tuple[float, int]] = {}  # key -> (last written, suppressed since)

    def warning(self, key: str, msg: str, *args: object) -> bool:
        """Log ``msg % args`` at warning level unless ``key`` was logged recently.

        Returns true when the line was written (callers may tie other side effects, such as a
        database write, to it).
        """
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last[0] < self._interval:
            self._last[key] = (last[0], last[1] + 1)
            return False
        suppressed = last[1] if last is not None else 0
        if last is None and len(self._last) >= self._max_keys:
            self._forget(now)
        self._last[key] = (now, 0)
        if suppressed:
            self._log.warning(msg + _SUPPRESSED, *args, suppressed, self._interval)
        else:
            self._log.warning(msg, *args)
        return True

    def _forget(self, now: float) -> None:
        stale = [k for k, (at, _) in self._last.items() if now - at >= self._interval]
        for key in stale or list(self._last)[: len(self._last) // 2]:
            del self._last[key]
