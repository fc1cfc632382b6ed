"""The troubleshooting message log: the newest OCPP frames, in memory, bounded, dumped on demand.

Why memory, not the database, not tmpfs. Every relayed call is two frames; written to SQLite they
were 97 % of what the daemon wrote to disk (3 KB per relayed call with the defaults: tens of GB a
day at a large site, the life of a consumer SD card in months). The log is for troubleshooting
what happened *lately*, so it does not need to survive a power cut:

* it lives in this process, a ring of the newest ``size`` frames that also never holds more than
  ``max_bytes`` (65 kB frames evict the oldest sooner, so memory stays bounded either way);
* ``edgegw messages`` reads it from the running daemon (control op ``messages``), and
  ``edgegw messages dump FILE`` writes it to a file;
* on a clean stop (and when the daemon stops on an error) the store writes it to
  :func:`dump_path` next to the database, one ring at most per stop, and the next start reads it
  back: the frames that led up to a restart, often the reason for it, survive it, and
  ``edgegw messages`` shows them while the daemon is stopped. A SIGKILL or a power cut loses
  the log; nothing the durability rule protects is in it.

tmpfs under ``/run/edgegw`` would cost the same memory plus a write path (and SQLite's page
overhead) for every frame, and would be lost at a reboot all the same.

Nothing a peer sends can break the log: a frame that cannot be encoded as UTF-8 (a lone
surrogate such as ``"\\ud800"`` is valid JSON) is kept with the offending characters escaped
as ``\\udXXX``; the dump is JSON with ASCII escapes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TextIO

log = logging.getLogger(__name__)

ENTRY_OVERHEAD: Final = 200
"""Bytes a kept frame costs besides its text (the tuple, its float and int, string headers)."""

DUMP_SUFFIX: Final = ".messages.jsonl"


def dump_path(database: Path) -> Path:
    """Where the daemon leaves its message log when it stops: next to its database."""
    return database.with_suffix(DUMP_SUFFIX)


def printable(text: str) -> str:
    """``text`` unchanged when it encodes as UTF-8, else with the characters that do not (lone
    surrogates) escaped as ``\\udXXX``."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


@dataclass(frozen=True, slots=True)
class LoggedFrame:
    """One frame as logged. ``seq`` grows by one per frame (a cursor for paging); ``direction``
    is ``charger>``, ``cloud>`` (received) or ``>charger``, ``>cloud`` (sent by the gateway)."""

    seq: int
    at: float
    charger_id: str
    direction: str
    frame: str

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "time": datetime.fromtimestamp(self.at, UTC).isoformat(timespec="milliseconds"),
            "charger": self.charger_id,
            "direction": self.direction,
            "frame": self.frame,
        }


_Entry = tuple[int, float, str, str, str, int]  # seq, at, charger, direction, frame, cost


class MessageLog:
    """The newest frames: at most ``size`` of them and ``max_bytes`` of memory (0 = none kept).

    Tuples of strings and numbers only: CPython's collector stops tracking them at the first
    collection, so a full ring does not slow garbage collection down.
    """

    def __init__(self, *, size: int, max_bytes: int, clock: Callable[[], float]) -> None:
        if size < 0 or max_bytes < 0:
            raise ValueError(f"size and max_bytes must be >= 0, got {size} and {max_bytes}")
        self.size = size
        self.max_bytes = max_bytes
        self._clock = clock
        self._entries: deque[_Entry] = deque()
        self._bytes = 0
        self._next_seq = 1
        self.dropped_for_bytes = 0
        """Frames evicted before their turn because the byte bound was reached."""

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        """Memory the kept frames cost, as estimated (``sys.getsizeof`` plus an overhead)."""
        return self._bytes

    def append(self, charger_id: str, direction: str, frame: str, at: float | None = None) -> None:
        """Keep one frame (escaped if it cannot be encoded), evicting the oldest beyond the
        bounds. A frame larger than the whole byte budget is kept cut to fit it."""
        if not self.size or not self.max_bytes:
            return
        frame = printable(frame)
        charger_id = printable(charger_id)
        cost = sys.getsizeof(frame) + sys.getsizeof(charger_id) + ENTRY_OVERHEAD
        if cost > self.max_bytes:
            keep = max(0, (self.max_bytes - ENTRY_OVERHEAD) // 4 - 64)
            frame = f"{frame[:keep]}...[{len(frame)} characters, cut to fit the log]"
            cost = sys.getsizeof(frame) + sys.getsizeof(charger_id) + ENTRY_OVERHEAD
        entries = self._entries
        while entries and (len(entries) >= self.size or self._bytes + cost > self.max_bytes):
            evicted = entries.popleft()
            self._bytes -= evicted[5]
            if len(entries) + 1 < self.size:
                self.dropped_for_bytes += 1
        seq = self._next_seq
        self._next_seq += 1
        entries.append(
            (seq, self._clock() if at is None else at, charger_id, direction, frame, cost)
        )
        self._bytes += cost

    def newest(
        self, *, charger_id: str | None = None, limit: int = 100, before: int | None = None
    ) -> list[LoggedFrame]:
        """Up to ``limit`` frames, newest first: of ``charger_id`` (None: all), older than the
        frame ``before`` (a ``seq``; None: from the newest)."""
        found: list[LoggedFrame] = []
        for seq, at, charger, direction, frame, _cost in reversed(self._entries):
            if len(found) >= limit:
                break
            if before is not None and seq >= before:
                continue
            if charger_id is None or charger == charger_id:
                found.append(LoggedFrame(seq, at, charger, direction, frame))
        return found

    def oldest_first(self) -> Iterator[LoggedFrame]:
        for seq, at, charger, direction, frame, _cost in list(self._entries):
            yield LoggedFrame(seq, at, charger, direction, frame)

    # ------------------------------------------------------------ files

    def dump(self, path: Path) -> int:
        """:func:`write_dump` of every kept frame; return how many. Blocking."""
        return write_dump(path, list(self.oldest_first()))

    def load(self, path: Path) -> int:
        """Keep the frames of a dump (what the previous run left); return how many were read.

        A missing file reads as none; lines that are not frames are skipped.
        """
        count = 0
        try:
            with path.open(encoding="utf-8", errors="backslashreplace") as lines:
                for line in lines:
                    frame = read_frame(line)
                    if frame is not None:
                        self.append(frame.charger_id, frame.direction, frame.frame, frame.at)
                        count += 1
        except FileNotFoundError:
            return 0
        return count


def write_dump(path: Path, frames: list[LoggedFrame]) -> int:
    """Write ``frames`` to ``path`` as JSON lines (owner-only, replaced atomically, synced);
    return how many. Blocking: from the event loop, take the frames there (a snapshot) and
    run this in a thread."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            write_frames(out, frames)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return len(frames)


def write_frames(out: TextIO, frames: Iterator[LoggedFrame] | list[LoggedFrame]) -> int:
    """Frames as JSON lines (ASCII: whatever a frame holds, the file is valid UTF-8)."""
    count = 0
    for frame in frames:
        out.write(json.dumps(frame.to_json(), separators=(",", ":")) + "\n")
        count += 1
    return count


def read_frame(line: str) -> LoggedFrame | None:
    """One line of a dump as a frame; None when it is not one."""
    try:
        data = json.loads(line)
        return LoggedFrame(
            int(data["seq"]),
            float(data["at"]),
            str(data["charger"]),
            str(data["direction"]),
            str(data["frame"]),
        )
    except (ValueError, KeyError, TypeError, RecursionError):
        return None


def read_dump(path: Path) -> list[LoggedFrame]:
    """The frames of a dump, oldest first (the CLI, while the daemon is stopped)."""
    with path.open(encoding="utf-8", errors="backslashreplace") as lines:
        return [f for f in map(read_frame, lines) if f is not None]
