"""Log lines that an attacker cannot multiply.

Every refusal deserves a clear log line, but a flood of refusals must not flood the journal (or
wear out the SD card of a Raspberry Pi). :class:`QuietLog` writes the first occurrence of each
kind at once and then at most one line per interval, saying how many were left out.
:class:`QuietFilter` does the same for a library's logger (websockets), per message template.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

_SUPPRESSED = " (%d more like this in the last %.0f s)"


class _Window:
    """When each key was last let through, and how many were held back since (bounded)."""

    def __init__(self, interval: float, max_keys: int, clock: Callable[[], float]) -> None:
        self.interval = interval
        self._max_keys = max_keys
        self._clock = clock
        self._last: dict[str, tuple[float, int]] = {}  # key -> (last written, suppressed since)

    def admit(self, key: str) -> int | None:
        """None: hold this one back; else let it through, with the count held back before."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last[0] < self.interval:
            self._last[key] = (last[0], last[1] + 1)
            return None
        if last is None and len(self._last) >= self._max_keys:
            self._forget(now)
        self._last[key] = (now, 0)
        return last[1] if last is not None else 0

    def _forget(self, now: float) -> None:
        stale = [k for k, (at, _) in self._last.items() if now - at >= self.interval]
        for key in stale or list(self._last)[: len(self._last) // 2]:
            del self._last[key]


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
        self._window = _Window(interval, max_keys, clock)

    def warning(self, key: str, msg: str, *args: object) -> bool:
        """Log ``msg % args`` at warning level unless ``key`` was logged recently.

        Returns true when the line was written (callers may tie other side effects, such as a
        database write, to it).
        """
        return self.log(logging.WARNING, key, msg, *args)

    def log(self, level: int, key: str, msg: str, *args: object, exc_info: bool = False) -> bool:
        """:meth:`warning` at any level; ``exc_info`` adds the current exception's traceback."""
        suppressed = self._window.admit(key)
        if suppressed is None:
            return False
        if suppressed:
            interval = self._window.interval
            self._log.log(level, msg + _SUPPRESSED, *args, suppressed, interval, exc_info=exc_info)
        else:
            self._log.log(level, msg, *args, exc_info=exc_info)
        return True


class QuietFilter(logging.Filter):
    """A logging filter: each message template at most once per ``interval`` seconds.

    For a library logger that reports the same failure once per connection: the first record
    goes through (with its traceback), later ones only once per interval, with a count.
    """

    def __init__(
        self,
        *,
        interval: float = 60.0,
        max_keys: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._window = _Window(interval, max_keys, clock)

    def filter(self, record: logging.LogRecord) -> bool:
        suppressed = self._window.admit(f"{record.name}:{record.msg}")
        if suppressed is None:
            return False
        if suppressed:
            record.msg = f"{record.msg} ({suppressed} more like this in the last "
            record.msg += f"{self._window.interval:.0f} s)"
        return True
