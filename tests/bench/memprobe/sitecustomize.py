"""A memory probe for the soak's gateway process, loaded by ``site`` from PYTHONPATH.

``soak.py --probe-memory`` puts this folder on the gateway's PYTHONPATH and names a report file
in ``EDGEGW_MEMPROBE``. In that process only (its command line runs ``edgegw``), tracemalloc
starts before anything is imported, and:

* SIGUSR1 appends a snapshot to the report: the collector's counts, how many objects it tracks
  per type (the 25 most numerous), the live asyncio tasks counted by name (digits folded), and
  where the memory allocated since the previous snapshot was allocated (the 25 biggest
  differences, by source line);
* SIGUSR2 runs a full collection first and reports how many unreachable objects it freed, so
  that garbage the daemon's collector settings defer can be told from memory still referenced.

``EDGEGW_MEMPROBE_FRAMES`` sets how many frames each allocation keeps (6; 1 is much faster).
With ``EDGEGW_MEMPROBE_SNAPSHOTS=1`` each tracemalloc snapshot is also written next to the
report (``<report>.<n>.snapshot``, :meth:`tracemalloc.Snapshot.load` reads it back).

Nothing here runs unless ``EDGEGW_MEMPROBE`` is set: the folder is inert on a normal path.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import re
import signal
import sys
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from types import FrameType

_FRAMES = 6


def _tasks_by_name() -> list[tuple[str, int]]:
    """The event loop's live tasks, counted by name with digits folded (``relay:CP12`` and
    ``relay:CP7`` are one ``relay:CP#``): how many tasks each charger costs."""
    try:
        tasks = asyncio.all_tasks()
    except RuntimeError:  # no loop running in this thread
        return []
    return Counter(re.sub(r"\d+", "#", t.get_name()) for t in tasks).most_common(25)


class _Probe:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.previous: tracemalloc.Snapshot | None = None
        self.started = time.monotonic()
        self.snapshots = 0

    def rss_kb(self) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def dump(self, *, collect: bool) -> None:
        entry: dict[str, object] = {
            "uptime_s": round(time.monotonic() - self.started, 1),
            "rss_kb": self.rss_kb(),
            "gc_count": gc.get_count(),
            "gc_threshold": gc.get_threshold(),
            "gc_frozen": gc.get_freeze_count(),
        }
        if collect:
            entry["collected"] = gc.collect()
            entry["rss_kb_after_collect"] = self.rss_kb()
        types = Counter(type(o).__qualname__ for o in gc.get_objects())
        entry["tracked_objects"] = sum(types.values())
        entry["tasks"] = _tasks_by_name()
        entry["types"] = types.most_common(25)
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        entry["traced_kb"] = sum(s.size for s in snapshot.statistics("filename")) // 1024
        if self.previous is not None:
            diff = snapshot.compare_to(self.previous, "traceback")[:25]
            entry["growth"] = [
                {
                    "kb": stat.size_diff // 1024,
                    "count": stat.count_diff,
                    "where": [f"{f.filename}:{f.lineno}" for f in stat.traceback],
                }
                for stat in diff
            ]
        self.previous = snapshot
        if os.environ.get("EDGEGW_MEMPROBE_SNAPSHOTS"):  # for offline analysis
            self.snapshots += 1
            snapshot.dump(str(self.path.with_suffix(f".{self.snapshots}.snapshot")))
        with self.path.open("a") as out:
            out.write(json.dumps(entry) + "\n")

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.dump(collect=signum == signal.SIGUSR2)


def _install() -> None:
    target = os.environ.get("EDGEGW_MEMPROBE")
    if not target or "edgegw" not in sys.orig_argv:
        return
    tracemalloc.start(int(os.environ.get("EDGEGW_MEMPROBE_FRAMES", _FRAMES)))
    probe = _Probe(Path(target))
    signal.signal(signal.SIGUSR1, probe.on_signal)
    signal.signal(signal.SIGUSR2, probe.on_signal)


_install()
