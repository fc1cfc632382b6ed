"""The control socket under a hostile local user: one read-only member must not lock root out.

Read-only peers get a share of the client slots each and never the last ones, which are kept
for root, the daemon's user and the admin group. The cross-user case runs real processes under
another uid (it needs root); the share and the reserve are also checked in-process, where the
test's own uid is made read-only with ``admin_uids=frozenset()``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from edgegw.control import ControlServer, ErrorCode, call_sync

NOBODY = 65534  # nobody / nogroup
# The hog runs as another user, who cannot reach the test's virtualenv under /root.
SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin")
DAEMON = 1  # another unprivileged uid that exists on Debian-like systems

# A read-only member's process: open COUNT connections, say how many the daemon served, then
# keep them all open until stdin closes.
HOG = """
import json, socket, sys
path, count = sys.argv[1], int(sys.argv[2])
served = refused = 0
held = []
for n in range(count):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    answer = b""
    try:
        sock.sendall(b'{"id": 1, "op": "ping"}\\n')
        while not answer.endswith(b"\\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    except ConnectionError:  # refused at once: the daemon closed before reading the ping
        pass
    if b'"result"' in answer:
        served += 1
        held.append(sock)
    else:
        refused += 1
        sock.close()
print(json.dumps({"served": served, "refused": refused}), flush=True)
sys.stdin.read()
"""


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory other users can reach (pytest's tmp_path is private to its owner)."""
    path = Path(tempfile.mkdtemp(prefix="edgegw-ctl-", dir="/tmp"))
    path.chmod(0o711)
    yield path
    for item in sorted(path.rglob("*"), reverse=True):
        item.rmdir() if item.is_dir() else item.unlink()
    path.rmdir()


class Hog:
    def __init__(self, proc: asyncio.subprocess.Process, served: int, refused: int) -> None:
        self.proc, self.served, self.refused = proc, served, refused


@pytest.fixture
async def hogs() -> AsyncIterator[list[Hog]]:
    running: list[Hog] = []
    yield running
    for hog in running:
        assert hog.proc.stdin is not None
        hog.proc.stdin.close()
        async with asyncio.timeout(10):
            await hog.proc.wait()


async def hog(running: list[Hog], path: Path, uid: int, count: int) -> Hog:
    proc = await asyncio.create_subprocess_exec(
        SYSTEM_PYTHON or "python3", "-c", HOG, str(path), str(count),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        user=uid, group=NOBODY, extra_groups=[NOBODY],
    )  # fmt: skip
    assert proc.stdout is not None
    async with asyncio.timeout(20):
        line = await proc.stdout.readline()
    counts = json.loads(line)
    started = Hog(proc, counts["served"], counts["refused"])
    running.append(started)
    return started


def ping(path: Path) -> object:
    return call_sync(path, "ping")


needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or SYSTEM_PYTHON is None,
    reason="runs processes as other users, with a system python3",
)


@needs_root
async def test_a_read_only_member_cannot_lock_root_out(
    shared_dir: Path, hogs: list[Hog], caplog: pytest.LogCaptureFixture
) -> None:
    path = shared_dir / "run" / "ctl.sock"
    async with ControlServer(path, group="nogroup") as server:
        nobody = await hog(hogs, path, NOBODY, 64)
        assert nobody.served + nobody.refused == 64
        assert 0 < nobody.served < 64
        # Root's CLI still gets in, more than once.
        for _ in range(3):
            assert await asyncio.to_thread(ping, path)
        assert sum(not c.admin for c in server.clients()) == nobody.served
    # Dozens of refusals, one log line (the next would come a minute later, with a count).
    refusals = [r for r in caplog.records if "control client" in r.getMessage()]
    assert len(refusals) == 1 and f"uid {NOBODY} refused" in refusals[0].getMessage()


@needs_root
async def test_read_only_members_together_leave_the_reserve(
    shared_dir: Path, hogs: list[Hog]
) -> None:
    path = shared_dir / "run" / "ctl.sock"
    async with ControlServer(
        path, group="nogroup", max_clients=6, max_clients_per_uid=3, reserved_admin_slots=2
    ):
        first = await hog(hogs, path, NOBODY, 6)
        second = await hog(hogs, path, DAEMON, 6)
        assert (first.served, second.served) == (3, 1)  # 6 slots - 2 kept for admins
        assert await asyncio.to_thread(ping, path)
        assert await asyncio.to_thread(ping, path)


async def served(path: Path) -> asyncio.StreamWriter:
    """A connection the daemon answers (kept open by the caller)."""
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(b'{"id": 1, "op": "ping"}\n')
    assert b'"result"' in await reader.readline()
    return writer


async def refusal(path: Path) -> dict[str, object]:
    """What the daemon says to a connection it refuses (at once, before any request)."""
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        async with asyncio.timeout(5):
            line = await reader.readline()
    finally:
        writer.close()
    answer = json.loads(line)
    assert isinstance(answer, dict)
    error = answer["error"]
    assert isinstance(error, dict)
    return error


async def test_one_read_only_uid_gets_its_share_only(tmp_path: Path) -> None:
    path = tmp_path / "ctl.sock"
    async with ControlServer(
        path, admin_uids=frozenset(), max_clients=10, max_clients_per_uid=3, reserved_admin_slots=2
    ) as server:
        held = [await served(path) for _ in range(3)]
        error = await refusal(path)
        assert error["code"] == ErrorCode.UNAVAILABLE.value
        assert f"uid {os.getuid()} already has 3" in str(error["message"])
        assert len(server.clients()) == 3
        for writer in held:
            writer.close()


async def test_read_only_peers_never_take_the_reserved_slots(tmp_path: Path) -> None:
    path = tmp_path / "ctl.sock"
    async with ControlServer(
        path, admin_uids=frozenset(), max_clients=4, max_clients_per_uid=10, reserved_admin_slots=3
    ) as server:
        writer = await served(path)
        error = await refusal(path)
        assert error["code"] == ErrorCode.UNAVAILABLE.value
        assert "kept for root" in str(error["message"])
        assert len(server.clients()) == 1
        writer.close()
