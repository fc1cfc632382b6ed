"""The troubleshooting message log: the newest OCPP frames, in memory, bounded, dumped on demand.

Why memory, not the database, not tmpfs. Every relayed call is two frames; written to SQLite they
were 97 % of what the daemon wrote to disk (3 KB per relayed call with the defaults: tens of GB a
day at a large site, the life of a consumer SD card in months). The log is for troubleshooting
what happened *lately*, so it does not need to survive a power cut:

* it lives in this process, a ring of the newest ``size`` frames that also never holds more than
  ``max_bytes`` (65 kB frames evict the oldest sooner, so memory stays bounded either way),
  all but the newest hundred or so compressed (:class:`MessageLog`);
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
import tempfile
import zlib
from array import array
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from sys import getsizeof
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


_Entry = tuple[int, float, str, str, str]  # seq, at, charger, direction, frame

BLOCK_FRAMES: Final = 128
"""Frames per sealed block: each block is compressed once, when it is full."""
BLOCK_BYTES: Final = 64 * 1024
"""A block is also sealed when its frames cost this much (big frames are not held raw long)."""
BLOCK_OVERHEAD: Final = 200
"""Bytes a sealed block costs besides its compressed data (the tuple, its numbers, headers)."""

_SEP: Final = "\x00"
_ASCII_ENTRY: Final = 2 * getsizeof("") + ENTRY_OVERHEAD
"""What an entry costs besides the lengths of its two texts when both are ASCII."""


def _cost(charger_id: str, frame: str) -> int:
    """Memory an open entry costs, as estimated."""
    return getsizeof(frame) + getsizeof(charger_id) + ENTRY_OVERHEAD


class _Block:
    """Sealed frames: ``count`` entries from ``first_seq`` on (consecutive), zlib-compressed.

    Stored by column: the times as doubles, then the charger ids, directions and frames joined
    by NUL characters (a tenth of a JSON encoding's cost, and alike texts side by side compress
    better). A block whose texts hold a NUL themselves is stored as JSON instead.
    """

    __slots__ = ("columns", "cost", "count", "data", "first_seq")

    def __init__(self, entries: list[_Entry]) -> None:
        self.first_seq = entries[0][0]
        self.count = count = len(entries)
        ats = array("d", [e[1] for e in entries])
        chargers, directions = [e[2] for e in entries], [e[3] for e in entries]
        text = _SEP.join(chargers + directions + [e[4] for e in entries])
        self.columns = text.count(_SEP) == 3 * count - 1
        if self.columns:  # the texts are printable (UTF-8 encodable): see MessageLog.append
            payload = ats.tobytes() + text.encode("utf-8")
        else:
            payload = json.dumps(entries, ensure_ascii=False, separators=(",", ":")).encode()
        self.data = zlib.compress(payload, 1)
        self.cost = len(self.data) + BLOCK_OVERHEAD

    def entries(self) -> list[_Entry]:
        data = zlib.decompress(self.data)
        if not self.columns:
            return [tuple(e) for e in json.loads(data)]
        count, first = self.count, self.first_seq
        ats = array("d")
        ats.frombytes(data[: 8 * count])
        texts = data[8 * count :].decode("utf-8").split(_SEP)
        seqs = range(first, first + count)
        return list(
            zip(seqs, ats, texts[:count], texts[count : 2 * count], texts[2 * count :], strict=True)
        )

    @property
    def end(self) -> int:
        """The seq after the block's last frame."""
        return self.first_seq + self.count


class MessageLog:
    """The newest frames: at most ``size`` of them and ``max_bytes`` of memory (0 = none kept).

    Stored compactly: the newest frames (up to :data:`BLOCK_FRAMES`) as tuples of strings and
    numbers, the older ones in sealed blocks compressed with zlib (a site's frames are alike: a
    block of MeterValues takes a twentieth of its text). A full ring at a large site is then
    about half a megabyte instead of twelve or more; keeping a frame costs one tuple appended
    and, once per block, well under a microsecond a frame to seal it; reading (the ``messages``
    op, a dump) decompresses. Frames are counted one by one: the ring shows the newest ``size``
    (seqs from ``_first`` on); the older ones of the oldest block are hidden, and the block
    (its memory counted in :attr:`bytes` until then) goes when the next block is sealed after
    its last frame is hidden. Neither tuples of strings nor bytes are tracked by CPython's
    collector, so a full ring does not slow garbage collection down.
    """

    def __init__(self, *, size: int, max_bytes: int, clock: Callable[[], float]) -> None:
        if size < 0 or max_bytes < 0:
            raise ValueError(f"size and max_bytes must be >= 0, got {size} and {max_bytes}")
        self.size = size
        self.max_bytes = max_bytes
        self._clock = clock
        self._blocks: deque[_Block] = deque()
        self._open: list[_Entry] = []
        self._open_bytes = 0
        self._bytes = 0
        self._first = 1  # the oldest frame shown (frames before it are hidden or gone)
        self._next_seq = 1
        self.dropped_for_bytes = 0
        """Frames evicted before their turn because the byte bound was reached."""

    def __len__(self) -> int:
        return self._next_seq - self._first

    @property
    def held(self) -> int:
        """Frames in memory, shown or hidden: at most ``size`` plus two blocks' worth (the
        oldest block's hidden frames, the open block's)."""
        return sum(block.count for block in self._blocks) + len(self._open)

    @property
    def bytes(self) -> int:
        """Memory the held frames cost, as estimated: the sealed blocks' compressed size and the
        open block's ``sys.getsizeof``, each plus an overhead."""
        return self._bytes

    def append(self, charger_id: str, direction: str, frame: str, at: float | None = None) -> None:
        """Keep one frame (escaped if it cannot be encoded), evicting the oldest beyond the
        bounds. A frame larger than the whole byte budget is kept cut to fit it."""
        if not self.size or not self.max_bytes:
            return
        if frame.isascii() and charger_id.isascii():
            cost = len(frame) + len(charger_id) + _ASCII_ENTRY  # = _cost(...), two calls fewer
        else:
            frame, charger_id = printable(frame), printable(charger_id)
            cost = _cost(charger_id, frame)
        if self._bytes + cost > self.max_bytes:
            frame, cost = self._make_room(charger_id, frame, cost)
        seq = self._next_seq
        self._next_seq = seq + 1
        if seq - self._first >= self.size:
            self._first = seq + 1 - self.size
        self._open.append((seq, self._clock() if at is None else at, charger_id, direction, frame))
        self._open_bytes += cost
        self._bytes += cost
        if len(self._open) >= BLOCK_FRAMES or self._open_bytes >= BLOCK_BYTES:
            self._seal()

    def _seal(self) -> None:
        """The open frames (those still shown) into a block; blocks wholly hidden go."""
        shown = self._open[max(0, self._first - self._open[0][0]) :]
        block = _Block(shown)
        self._blocks.append(block)
        self._bytes += block.cost - self._open_bytes
        self._open = []
        self._open_bytes = 0
        while self._blocks[0].end <= self._first:
            self._bytes -= self._blocks.popleft().cost

    def _make_room(self, charger_id: str, frame: str, cost: int) -> tuple[str, int]:
        """Free memory for a frame costing ``cost``: the oldest blocks go (without blocks, the
        oldest open frames). Returns the frame and its cost, cut if it exceeds the budget."""
        if cost > self.max_bytes:
            keep = max(0, (self.max_bytes - ENTRY_OVERHEAD) // 4 - 64)
            frame = f"{frame[:keep]}...[{len(frame)} characters, cut to fit the log]"
            cost = _cost(charger_id, frame)
        # The frames this append hides anyway (the count bound) are not dropped for bytes.
        shown = max(self._first, self._next_seq + 1 - self.size)
        while self._bytes + cost > self.max_bytes and (self._blocks or self._open):
            if self._blocks:
                block = self._blocks.popleft()
                end, freed = block.end, block.cost
            else:
                entry = self._open.pop(0)
                end = entry[0] + 1
                freed = _cost(entry[2], entry[4])
                self._open_bytes -= freed
            self._bytes -= freed
            self.dropped_for_bytes += max(0, end - shown)
            self._first = max(self._first, end)
            shown = max(shown, end)
        return frame, cost

    def _newest_first(self, before: int | None) -> Iterator[_Entry]:
        """The shown entries, newest first, from the one before ``before`` (a seq) on."""
        first = self._first
        for entry in reversed(self._open):
            if entry[0] < first:
                return
            yield entry
        for block in reversed(self._blocks):
            if block.end <= first:
                return
            if before is not None and block.first_seq >= before:
                continue  # all of it is newer: not even decompressed
            for entry in reversed(block.entries()):
                if entry[0] < first:
                    return
                yield entry

    def newest(
        self, *, charger_id: str | None = None, limit: int = 100, before: int | None = None
    ) -> list[LoggedFrame]:
        """Up to ``limit`` frames, newest first: of ``charger_id`` (None: all), older than the
        frame ``before`` (a ``seq``; None: from the newest)."""
        found: list[LoggedFrame] = []
        if limit <= 0:
            return found
        for seq, at, charger, direction, frame in self._newest_first(before):
            if before is not None and seq >= before:
                continue
            if charger_id is None or charger == charger_id:
                found.append(LoggedFrame(seq, at, charger, direction, frame))
                if len(found) >= limit:
                    break
        return found

    def oldest_first(self) -> Iterator[LoggedFrame]:
        """Every shown frame, oldest first (taken at once: appends meanwhile do not show)."""
        first, blocks, tail = self._first, list(self._blocks), list(self._open)
        for block in blocks:
            if block.end > first:
                for entry in block.entries()[max(0, first - block.first_seq) :]:
                    yield LoggedFrame(*entry)
        if tail:
            for entry in tail[max(0, first - tail[0][0]) :]:
                yield LoggedFrame(*entry)

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
                        direction = printable(frame.direction)  # the others: append
                        self.append(frame.charger_id, direction, frame.frame, frame.at)
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
