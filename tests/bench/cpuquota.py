"""A CPU quota for one benchmarked process: a cgroup the benchmark creates and removes.

``capacity.py --cpu-quota 25`` runs the relay under test (the gateway, then the byte-pipe
relay) in a cgroup of its own limited to 25 % of one core, the CPU a Raspberry Pi 4-class core
gives a CPython process that runs 3-5x slower than this machine's. The load generator and the
cloud stay outside it.

* cgroup v2 (``/sys/fs/cgroup`` is a ``cgroup2`` mount): a child ``/sys/fs/cgroup/<name>`` with
  ``cpu.max = "<quota> <period>"`` (the ``cpu`` controller is enabled in the root's
  ``cgroup.subtree_control`` first if it is not);
* cgroup v1 (a ``cpu`` hierarchy at ``/sys/fs/cgroup/cpu``): ``/sys/fs/cgroup/cpu/<name>`` with
  ``cpu.cfs_period_us`` and ``cpu.cfs_quota_us``.

The process is moved in by writing its pid to the group's ``cgroup.procs`` (all its threads
go with it: the SQLite worker counts against the same quota). On exit every process still in
the group is moved back to the root and the directory removed. Without root, or without a
writable cpu controller, :class:`QuotaUnavailable` says which and nothing is changed.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from types import TracebackType

CGROUP_ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 100_000


class QuotaUnavailable(RuntimeError):
    """This machine or user cannot set a CPU quota (the reason is the message)."""


def _mount_type(path: Path) -> str | None:
    """The file-system type mounted exactly at ``path`` (``/proc/mounts``), if any."""
    found = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[1] == str(path):
                found = fields[2]  # the last mount at a path is the one in effect
    return found


class CpuQuota:
    """A cgroup limiting its processes to ``percent`` % of one core (context manager)."""

    def __init__(self, percent: float, name: str, root: Path = CGROUP_ROOT) -> None:
        if not 0 < percent <= 100 * (os.cpu_count() or 1):
            raise ValueError(f"a CPU quota is a percentage of one core, got {percent}")
        self.percent = percent
        self.quota_us = max(1000, round(PERIOD_US * percent / 100))
        self.version, self.parent = self._hierarchy(root)
        self.path = self.parent / name

    @staticmethod
    def _hierarchy(root: Path) -> tuple[int, Path]:
        if os.geteuid() != 0:
            raise QuotaUnavailable("a CPU quota needs root (the benchmark creates a cgroup)")
        if _mount_type(root) == "cgroup2":
            controllers = (root / "cgroup.controllers").read_text().split()
            if "cpu" not in controllers:
                raise QuotaUnavailable(f"cgroup v2 at {root} offers no cpu controller")
            return 2, root
        v1 = root / "cpu"
        if (v1 / "cpu.cfs_quota_us").exists():
            return 1, v1
        raise QuotaUnavailable(
            f"no cpu controller: {root} is not cgroup2 and {v1} has no cpu.cfs_quota_us"
        )

    def describe(self) -> str:
        if self.version == 2:
            setting = f'cpu.max = "{self.quota_us} {PERIOD_US}"'
        else:
            setting = f"cpu.cfs_quota_us = {self.quota_us}, cpu.cfs_period_us = {PERIOD_US}"
        return f"cgroup v{self.version} {self.path}: {setting} ({self.percent:g} % of one core)"

    def __enter__(self) -> CpuQuota:
        try:
            if self.version == 2:
                enabled = (self.parent / "cgroup.subtree_control").read_text().split()
                if "cpu" not in enabled:
                    (self.parent / "cgroup.subtree_control").write_text("+cpu")
            self.path.mkdir(exist_ok=True)
            if self.version == 2:
                (self.path / "cpu.max").write_text(f"{self.quota_us} {PERIOD_US}")
            else:
                (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
                (self.path / "cpu.cfs_quota_us").write_text(str(self.quota_us))
        except OSError as exc:
            self._remove()
            raise QuotaUnavailable(f"cannot set up {self.path}: {exc}") from exc
        return self

    def add(self, pid: int) -> None:
        """Move process ``pid`` (every thread of it) into the group."""
        (self.path / "cgroup.procs").write_text(str(pid))

    def throttled(self) -> tuple[int, float]:
        """How often the group was throttled and for how long in all (s), since created."""
        stats: dict[str, int] = {}
        with contextlib.suppress(OSError):
            for line in (self.path / "cpu.stat").read_text().splitlines():
                key, _, value = line.partition(" ")
                stats[key] = int(value)
        if self.version == 2:
            return stats.get("nr_throttled", 0), stats.get("throttled_usec", 0) / 1e6
        return stats.get("nr_throttled", 0), stats.get("throttled_time", 0) / 1e9

    def _remove(self) -> None:
        if not self.path.is_dir():
            return
        with contextlib.suppress(OSError):
            for pid in (self.path / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):  # it may have exited meanwhile
                    (self.parent / "cgroup.procs").write_text(pid)
        try:
            self.path.rmdir()
        except OSError as exc:
            print(f"  (could not remove {self.path}: {exc}; remove it by hand)")

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._remove()
