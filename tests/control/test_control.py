"""The control socket end to end: a real ControlServer on a Unix socket in tmp_path, real clients.

A non-admin peer is simulated with ``admin_uids=frozenset()`` (tests cannot change their uid).
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import logging
import os
import socket
import stat
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from edgegw.control import (
    AnotherInstanceRunning,
    ConnectionLost,
    ControlClient,
    ControlError,
    ControlServer,
    ControlSocketError,
    DaemonNotRunning,
    ErrorCode,
    PermissionDenied,
    RemoteError,
    call_sync,
    get_arg,
)
from edgegw.control.protocol import MAX_LINE, Framing, LineFramer

CLOCK = 1_700_000_000.5

ServerFactory = Callable[..., Awaitable[ControlServer]]


class Ops:
    """The ops a test daemon offers, and what they saw."""

    def __init__(self) -> None:
        self.resets: list[str] = []
        self.release = asyncio.Event()
        self.slow_started = asyncio.Event()

    def register(self, server: ControlServer) -> None:
        server.register("echo", self.echo, description="returns its arguments")
        server.register("charger.reset", self.reset, admin=True, description="reset a charger")
        server.register("charger.get", self.get_charger)
        server.register("fail.crash", self.crash)
        server.register("fail.not_json", self.not_json)
        server.register("slow", self.slow)
        server.register("huge", self.huge)

    async def echo(self, args: dict[str, Any]) -> Any:
        return args

    async def reset(self, args: dict[str, Any]) -> Any:
        self.resets.append(get_arg(args, "charger", str))
        return {"reset": True}

    async def get_charger(self, args: dict[str, Any]) -> Any:
        charger = get_arg(args, "charger", str)
        raise ControlError(ErrorCode.NOT_FOUND, f"no charger {charger!r}")

    async def crash(self, args: dict[str, Any]) -> Any:
        raise RuntimeError("secret detail /etc/edgegw/key")

    async def not_json(self, args: dict[str, Any]) -> Any:
        return {"when": object()}

    async def huge(self, args: dict[str, Any]) -> Any:
        return "a" * MAX_LINE

    async def slow(self, args: dict[str, Any]) -> Any:
        self.slow_started.set()
        await self.release.wait()
        return "done"


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    return tmp_path / "run" / "ctl.sock"


@pytest.fixture
def ops() -> Ops:
    return Ops()


@pytest.fixture
async def make_server(sock_path: Path, ops: Ops) -> AsyncIterator[ServerFactory]:
    servers: list[ControlServer] = []

    async def make(path: Path | None = None, **kwargs: Any) -> ControlServer:
        server = ControlServer(path or sock_path, clock=lambda: CLOCK, **kwargs)
        ops.register(server)
        servers.append(server)
        await server.start()
        return server

    yield make
    for server in servers:
        await server.close()


@pytest.fixture
async def connect(sock_path: Path) -> AsyncIterator[Callable[..., Awaitable[ControlClient]]]:
    clients: list[ControlClient] = []

    async def open_client(path: Path | None = None) -> ControlClient:
        client = await ControlClient.connect(path or sock_path)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        await client.close()


class RawClient:
    """Writes exactly the bytes a test gives and reads only when the test asks."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._framer = LineFramer()
        self._lines: deque[bytes] = deque()

    @classmethod
    async def connect(cls, path: Path) -> RawClient:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, str(path))
        return cls(sock)

    async def send(self, data: bytes) -> None:
        await asyncio.get_running_loop().sock_sendall(self.sock, data)

    async def _fill(self) -> bool:
        data = await asyncio.get_running_loop().sock_recv(self.sock, 65536)
        for line in self._framer.feed(data):
            assert line is not Framing.TOO_LONG
            self._lines.append(line)
        return bool(data)

    async def recv(self, timeout: float = 5) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while not self._lines:
                if not await self._fill():
                    raise EOFError("server closed the connection")
        message = json.loads(self._lines.popleft())
        assert isinstance(message, dict)
        return message

    async def read_to_eof(self, timeout: float = 10) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout):
            while await self._fill():
                pass
        messages = [json.loads(line) for line in self._lines]
        self._lines.clear()
        return messages

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
async def raw(sock_path: Path) -> AsyncIterator[Callable[..., Awaitable[RawClient]]]:
    clients: list[RawClient] = []

    async def open_raw(path: Path | None = None) -> RawClient:
        client = await RawClient.connect(path or sock_path)
        clients.append(client)
        return client

    yield open_raw
    for client in clients:
        client.close()


# ----------------------------------------------------------------------------- basic calls


async def test_ping_and_ops(make_server: ServerFactory, connect: Any) -> None:
    await make_server()
    client = await connect()
    assert await client.call("ping") == {"pong": True, "time": CLOCK}
    listing = {entry["op"]: entry for entry in await client.call("ops")}
    assert set(listing) == {
        "ping",
        "ops",
        "subscribe",
        "echo",
        "charger.reset",
        "charger.get",
        "fail.crash",
        "fail.not_json",
        "slow",
        "huge",
    }
    assert listing["charger.reset"] == {
        "op": "charger.reset",
        "admin": True,
        "allowed": True,
        "description": "reset a charger",
    }
    assert listing["echo"]["admin"] is False
    assert listing["echo"]["description"] == "returns its arguments"


async def test_registered_op_round_trip(make_server: ServerFactory, connect: Any) -> None:
    await make_server()
    client = await connect()
    args = {"name": "Garage 1 — Süd", "limits": [16, 16.5, None], "nested": {"on": True}}
    assert await client.call("echo", **args) == args
    assert await client.call("echo") == {}


async def test_unknown_op(make_server: ServerFactory, connect: Any) -> None:
    await make_server()
    client = await connect()
    with pytest.raises(RemoteError) as caught:
        await client.call("sync.nothing")
    assert caught.value.code == ErrorCode.UNKNOWN_OP
    assert "'sync.nothing'" in caught.value.message
    assert await client.call("ping")  # the connection is still fine


MALFORMED = [
    # (line, error code, id in the answer, part of the message)
    (b"{not json\n", ErrorCode.BAD_REQUEST, None, "malformed JSON"),
    (b"\xff\xfe\n", ErrorCode.BAD_REQUEST, None, "UTF-8"),
    (b"[1, 2]\n", ErrorCode.BAD_REQUEST, None, "JSON object"),
    (b'{"op": "ping"}\n', ErrorCode.BAD_REQUEST, None, "integer 'id'"),
    (b'{"id": true, "op": "ping"}\n', ErrorCode.BAD_REQUEST, None, "integer 'id'"),
    (b'{"id": 3}\n', ErrorCode.BAD_REQUEST, 3, "'op'"),
    (b'{"id": 4, "op": "ping", "args": [1]}\n', ErrorCode.BAD_ARGS, 4, "'args'"),
    (b'{"id": 5, "op": "ping", "extra": 1}\n', ErrorCode.BAD_REQUEST, 5, "extra"),
    (b'{"id": 6, "op": "echo", "args": {"x": NaN}}\n', ErrorCode.BAD_REQUEST, None, "NaN"),
]


@pytest.mark.parametrize("case", MALFORMED, ids=[c[3] for c in MALFORMED])
async def test_malformed_line(
    make_server: ServerFactory, raw: Any, case: tuple[bytes, ErrorCode, int | None, str]
) -> None:
    line, code, request_id, fragment = case
    await make_server()
    client = await raw()
    await client.send(line)
    answer = await client.recv()
    assert answer["ok"] is False
    assert answer["id"] == request_id
    assert answer["error"]["code"] == code
    assert fragment in answer["error"]["message"]
    await client.send(b'{"id": 99, "op": "ping"}\n')
    assert await client.recv() == {"id": 99, "ok": True, "result": {"pong": True, "time": CLOCK}}


async def test_blank_and_unterminated_lines(make_server: ServerFactory, raw: Any) -> None:
    await make_server()
    client = await raw()
    # Blank lines are ignored; a last line without newline is answered before the close.
    await client.send(b'\n  \n{"id": 1, "op": "ping"}')
    client.sock.shutdown(socket.SHUT_WR)
    answers = await client.read_to_eof()
    assert [a["id"] for a in answers] == [1]


async def test_oversize_line(make_server: ServerFactory, raw: Any) -> None:
    await make_server()
    client = await raw()
    huge = b'{"id": 1, "op": "echo", "args": {"x": "' + b"a" * MAX_LINE + b'"}}\n'
    await client.send(huge + b'{"id": 2, "op": "ping"}\n')
    first = await client.recv()
    assert first["id"] is None
    assert first["error"]["code"] == ErrorCode.TOO_LARGE
    assert str(MAX_LINE) in first["error"]["message"]
    second = await client.recv()
    assert second["id"] == 2
    assert second["ok"] is True


async def test_line_at_the_limit_is_accepted(make_server: ServerFactory, raw: Any) -> None:
    await make_server()
    client = await raw()
    head, tail = b'{"id": 1, "op": "echo", "args": {"x": "', b'"}}'
    line = head + b"a" * (MAX_LINE - len(head) - len(tail) - 100) + tail
    await client.send(line + b"\n")
    answer = await client.recv()
    assert answer["ok"] is True
    assert len(answer["result"]["x"]) == MAX_LINE - len(head) - len(tail) - 100


async def test_answer_too_large(make_server: ServerFactory, connect: Any) -> None:
    await make_server()
    client = await connect()
    with pytest.raises(RemoteError) as caught:
        await client.call("huge")
    assert caught.value.code == ErrorCode.TOO_LARGE


async def test_handler_control_error(make_server: ServerFactory, connect: Any) -> None:
    await make_server()
    client = await connect()
    with pytest.raises(RemoteError) as caught:
        await client.call("charger.get", charger="CP9")
    assert caught.value.code == ErrorCode.NOT_FOUND
    assert caught.value.message == "no charger 'CP9'"
    with pytest.raises(RemoteError) as caught:
        await client.call("charger.get", charger=7)
    assert caught.value.code == ErrorCode.BAD_ARGS
    assert caught.value.message == "argument 'charger' must be str, not int"


async def test_internal_error_is_logged_not_sent(
    make_server: ServerFactory, connect: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edgegw.control")
    await make_server()
    client = await connect()
    with pytest.raises(RemoteError) as caught:
        await client.call("fail.crash")
    assert caught.value.code == ErrorCode.INTERNAL
    assert "secret" not in caught.value.message
    assert "Traceback" not in caught.value.message
    crash_logs = [r for r in caplog.records if "fail.crash failed" in r.getMessage()]
    assert len(crash_logs) == 1
    assert crash_logs[0].exc_info is not None

    with pytest.raises(RemoteError) as caught:
        await client.call("fail.not_json")
    assert caught.value.code == ErrorCode.INTERNAL
    assert any("not JSON" in r.getMessage() for r in caplog.records)
    assert await client.call("ping")


# ----------------------------------------------------------------------------- permissions


async def test_read_only_peer_cannot_call_admin_ops(
    make_server: ServerFactory, connect: Any, ops: Ops
) -> None:
    await make_server(admin_uids=frozenset())
    client = await connect()
    with pytest.raises(PermissionDenied) as caught:
        await client.call("charger.reset", charger="CP1")
    assert caught.value.code == ErrorCode.PERMISSION_DENIED
    assert f"uid {os.getuid()}" in caught.value.message
    assert ops.resets == []
    assert await client.call("echo", a=1) == {"a": 1}  # read-only ops still work
    listing = {entry["op"]: entry for entry in await client.call("ops")}
    assert listing["charger.reset"]["allowed"] is False
    assert listing["echo"]["allowed"] is True


async def test_admin_peer_may_call_admin_ops(
    make_server: ServerFactory, connect: Any, ops: Ops, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edgegw.control")
    await make_server()  # default: root and the daemon's own uid are admins
    client = await connect()
    assert await client.call("charger.reset", charger="CP1") == {"reset": True}
    assert ops.resets == ["CP1"]
    assert any("calls charger.reset" in r.getMessage() for r in caplog.records)


def test_register_rejects_bad_names(sock_path: Path, ops: Ops) -> None:
    server = ControlServer(sock_path)
    with pytest.raises(ValueError, match="built in"):
        server.register("ping", ops.echo)
    with pytest.raises(ValueError, match="lower-case"):
        server.register("Sync Status", ops.echo)
    server.register("sync.status", ops.echo)
    with pytest.raises(ValueError, match="already registered"):
        server.register("sync.status", ops.echo)


# ---------------------------------------------------------------------------------- events


async def test_events_reach_matching_subscribers_only(
    make_server: ServerFactory, connect: Any
) -> None:
    server = await make_server()
    chargers, meter, idle = await connect(), await connect(), await connect()
    assert await chargers.subscribe("charger.*") == ["charger.*"]
    assert await meter.subscribe("meter.reading", "meter.reading") == ["meter.reading"]
    assert server.publish("charger.status", {"charger": "CP1", "status": "Charging"}) == 1
    assert server.publish("meter.reading", {"l1": 12.5}) == 1
    assert server.publish("sync.done", {}) == 0
    assert server.publish("charger.boot", {"charger": "CP2"}) == 1

    got = chargers.events()
    first = await anext(got)
    assert (first.topic, first.data) == ("charger.status", {"charger": "CP1", "status": "Charging"})
    second = await anext(got)
    assert (second.topic, second.data) == ("charger.boot", {"charger": "CP2"})
    reading = await anext(meter.events())
    assert (reading.topic, reading.data) == ("meter.reading", {"l1": 12.5})

    # Subscribing again replaces the topics; an empty list unsubscribes.
    assert await meter.subscribe() == []
    assert server.publish("meter.reading", {"l1": 1.0}) == 0
    assert await idle.subscribe("*") == ["*"]
    assert server.publish("anything.at.all", 1) == 1
    assert server.publish("charger.status", 2) == 2


async def test_bad_subscriptions(make_server: ServerFactory, connect: Any) -> None:
    server = await make_server()
    client = await connect()
    for topics in (["Charger Status"], ["charger.*.x"], "charger.*", [1]):
        with pytest.raises(RemoteError) as caught:
            await client.call("subscribe", topics=topics)
        assert caught.value.code == ErrorCode.BAD_ARGS
    with pytest.raises(ValueError, match="topic"):
        server.publish("Not A Topic", {})


async def test_slow_subscriber_is_dropped_without_memory_growth(
    make_server: ServerFactory, connect: Any, raw: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edgegw.control")
    bound = 16
    server = await make_server(max_queued_events=bound)
    slow = await raw()
    await slow.send(b'{"id": 1, "op": "subscribe", "args": {"topics": ["charger.*"]}}\n')
    assert (await slow.recv())["ok"] is True  # from here on, slow never reads

    fast = await connect()
    await fast.subscribe("charger.*")
    received: list[int] = []
    target = asyncio.Event()
    wanted = [0]

    async def consume() -> None:
        async for event in fast.events():
            received.append(event.data["n"])
            if wanted[0] and len(received) >= wanted[0]:
                target.set()

    consumer = asyncio.create_task(consume())  # noqa: TID251
    pad = "x" * 4096
    published = 0
    most_queued = 0
    slow_dropped = False
    for n in range(5000):
        delivered = server.publish("charger.status", {"n": n, "pad": pad})
        published += 1
        most_queued = max(most_queued, *(c.queued_events for c in server.clients()))
        if delivered == 1:
            slow_dropped = True
            break
        assert delivered == 2
        await fast.call("ping")  # a real round trip lets both connections' writers run
    assert slow_dropped, "the slow subscriber was never dropped"
    assert most_queued <= bound
    # Kernel and transport buffers took some before the queue filled: it is about unread bytes.
    assert published > bound
    assert any("dropped" in r.getMessage() for r in caplog.records)

    # The dropped client sees what was already on its socket, then end of stream.
    leftovers = await slow.read_to_eof()
    seen = [m["data"]["n"] for m in leftovers if "event" in m]
    assert seen == list(range(len(seen)))
    assert len(seen) < published

    # The fast subscriber got every event, in order, and is still served.
    wanted[0] = published
    if len(received) < published:
        async with asyncio.timeout(10):
            await target.wait()
    assert received == list(range(published))
    assert server.publish("charger.status", {"n": published}) == 1
    consumer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await consumer


# -------------------------------------------------------------------------- socket file


# Plain file operations, kept out of the async tests' bodies (ruff ASYNC240).


def _exists(path: Path) -> bool:
    return path.exists()


def _lstat(path: Path) -> os.stat_result:
    return path.lstat()


def _write(path: Path, text: str) -> None:
    path.write_text(text)


def _read(path: Path) -> str:
    return path.read_text()


def _unlink(path: Path) -> None:
    path.unlink()


async def test_socket_mode_without_group(make_server: ServerFactory, sock_path: Path) -> None:
    await make_server()
    st = _lstat(sock_path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert stat.S_IMODE(_lstat(sock_path.parent).st_mode) == 0o750  # created for us
    assert [p.name for p in sock_path.parent.iterdir()] == [sock_path.name]  # no staging left


async def test_socket_mode_with_group(
    make_server: ServerFactory, sock_path: Path, connect: Any
) -> None:
    group = grp.getgrgid(os.getgid())
    await make_server(group=group.gr_name)
    st = _lstat(sock_path)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert st.st_gid == group.gr_gid
    assert _lstat(sock_path.parent).st_gid == group.gr_gid
    client = await connect()
    assert await client.call("ping")


async def test_missing_group_falls_back_to_owner_only(
    make_server: ServerFactory, sock_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await make_server(group="edgegw-no-such-group")
    assert stat.S_IMODE(_lstat(sock_path).st_mode) == 0o600
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("edgegw-no-such-group does not exist" in r.getMessage() for r in warnings)


async def test_stale_socket_is_replaced(
    make_server: ServerFactory, sock_path: Path, connect: Any
) -> None:
    sock_path.parent.mkdir()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(sock_path))
    stale.close()  # the file stays, nothing listens: a crashed run
    with pytest.raises(DaemonNotRunning, match="systemctl start edgegw"):
        await ControlClient.connect(sock_path)
    await make_server()
    client = await connect()
    assert await client.call("ping")


async def test_live_socket_is_not_stolen(
    make_server: ServerFactory, sock_path: Path, connect: Any, ops: Ops
) -> None:
    await make_server()
    inode = _lstat(sock_path).st_ino
    second = ControlServer(sock_path)
    with pytest.raises(AnotherInstanceRunning, match="another edgegw is running"):
        await second.start()
    await second.close()  # must not remove the first one's socket
    assert _lstat(sock_path).st_ino == inode
    client = await connect()
    assert await client.call("ping")


async def test_other_file_at_socket_path_is_left_alone(sock_path: Path) -> None:
    sock_path.parent.mkdir()
    _write(sock_path, "precious")
    server = ControlServer(sock_path)
    with pytest.raises(ControlSocketError, match="not a socket"):
        await server.start()
    assert _read(sock_path) == "precious"


async def test_close_removes_socket_and_ends_clients(
    make_server: ServerFactory, sock_path: Path, connect: Any, ops: Ops
) -> None:
    server = await make_server()
    subscriber = await connect()
    await subscriber.subscribe("*")
    caller = await connect()
    pending = asyncio.create_task(caller.call("slow"))  # noqa: TID251
    await ops.slow_started.wait()
    await server.close()
    assert not _exists(sock_path)
    with pytest.raises(ConnectionLost):
        await pending
    with pytest.raises(ConnectionLost):
        await anext(subscriber.events())
    with pytest.raises(ConnectionLost):
        await caller.call("ping")


async def test_close_keeps_a_newer_socket(make_server: ServerFactory, sock_path: Path) -> None:
    server = await make_server()
    _unlink(sock_path)
    newer = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    newer.bind(str(sock_path))
    try:
        await server.close()
        assert _exists(sock_path)
    finally:
        newer.close()


# ---------------------------------------------------------------------------------- clients


async def test_daemon_not_running(sock_path: Path) -> None:
    with pytest.raises(DaemonNotRunning, match="systemctl start edgegw"):
        await ControlClient.connect(sock_path)
    with pytest.raises(DaemonNotRunning, match="systemctl start edgegw"):
        call_sync(sock_path, "ping")


async def test_call_sync(make_server: ServerFactory, sock_path: Path) -> None:
    await make_server()
    assert await asyncio.to_thread(call_sync, sock_path, "echo", {"a": [1, 2]}) == {"a": [1, 2]}
    with pytest.raises(RemoteError) as caught:
        await asyncio.to_thread(call_sync, sock_path, "nope")
    assert caught.value.code == ErrorCode.UNKNOWN_OP


async def test_too_many_clients(make_server: ServerFactory, sock_path: Path, connect: Any) -> None:
    await make_server(max_clients=1)
    first = await connect()
    with pytest.raises(RemoteError) as caught:
        await asyncio.to_thread(call_sync, sock_path, "ping")
    assert caught.value.code == ErrorCode.UNAVAILABLE
    assert await first.call("ping")


async def test_concurrent_clients(make_server: ServerFactory, connect: Any) -> None:
    await make_server()
    clients = [await connect() for _ in range(8)]

    async def work(index: int, client: ControlClient) -> list[Any]:
        return list(await asyncio.gather(*(client.call("echo", c=index, n=n) for n in range(25))))

    results = await asyncio.gather(*(work(i, c) for i, c in enumerate(clients)))
    for index, answers in enumerate(results):
        assert answers == [{"c": index, "n": n} for n in range(25)]


async def test_slow_op_does_not_block_the_connection(
    make_server: ServerFactory, connect: Any, ops: Ops
) -> None:
    await make_server()
    client = await connect()
    slow = asyncio.create_task(client.call("slow"))  # noqa: TID251
    await ops.slow_started.wait()
    assert await client.call("ping") == {"pong": True, "time": CLOCK}
    assert not slow.done()
    ops.release.set()
    assert await slow == "done"


# -------------------------------------------------------------------------- protocol units


def test_framer_splits_across_chunks_and_skips_long_lines() -> None:
    framer = LineFramer(max_line=8)
    assert framer.feed(b"ab") == []
    assert framer.feed(b"c\nde") == [b"abc"]
    assert framer.feed(b"f\n12345678\n") == [b"def", b"12345678"]
    # Too long across chunks: reported once, skipped to its newline, then back to normal.
    assert framer.feed(b"123456") == []
    assert framer.feed(b"789") == [Framing.TOO_LONG]
    assert framer.feed(b"more more\nok\n") == [b"ok"]
    # Too long within one chunk.
    assert framer.feed(b"123456789\nx\n") == [Framing.TOO_LONG, b"x"]
    assert framer.feed(b"tail") == []
    assert framer.rest() == b"tail"


def test_get_arg() -> None:
    args = {"s": "x", "i": 3, "b": True, "f": 2}
    assert get_arg(args, "s", str) == "x"
    assert get_arg(args, "f", float) == 2.0
    assert get_arg(args, "missing", int, 5) == 5
    with pytest.raises(ControlError, match="missing argument 'missing'"):
        get_arg(args, "missing", int)
    with pytest.raises(ControlError, match="must be int, not bool"):
        get_arg(args, "b", int)
