"""The daemon's end of the control socket: ops for the CLI and the TUI, events for subscribers.

The daemon registers its operations (``register``) and pushes state changes (``publish``); this
module only moves requests, answers and events, and decides who may do what:

- The socket file is the first gate. It is created ``0660`` and given the configured group (the
  installers and caretakers allowed to use ``edgegw``), or ``0600`` when there is no usable
  group. It is bound in a private temporary directory, given its mode and group there, and
  only then renamed into place, so it is never reachable with looser permissions.
- Peer credentials (``SO_PEERCRED``) are the second gate: root, the daemon's own user and the
  members of the configured admin group (``control.admin_group``, e.g. the caretakers whose
  kiosk TUI must act) may call every op; anyone else who got through the file permissions may
  call read-only ops only. Group membership is the peer's as the kernel saw it when it
  connected (its primary group and ``SO_PEERGROUPS``), or, where the kernel cannot tell, the
  group database's member list for the peer's user.
- One client cannot hurt the daemon or the others: lines are bounded, answers are written with
  back-pressure (a client that stops reading stops being read), at most ``max_inflight``
  requests per client run at once, and events go through a bounded per-client queue; a
  subscriber that lets it fill is dropped with one log line instead of growing memory.
- One user cannot lock the others out: a read-only user holds at most ``max_clients_per_uid``
  connections, and read-only users together never take the last ``reserved_admin_slots`` of
  the ``max_clients``, which stay free for root, the daemon's user and the admin group (whose
  CLI must get in while someone floods the socket).

A stale socket file left by a crashed run is replaced; a socket where something still accepts
connections is never taken over.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import grp
import itertools
import logging
import os
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from edgegw.control.connection import (
    ClientInfo,
    Connection,
    Peer,
    peer_groups,
    peer_of,
    user_groups,
)
from edgegw.control.protocol import (
    MAX_LINE,
    NAME_PATTERN,
    TOPIC_PATTERN,
    ControlError,
    ErrorCode,
    LineTooLong,
    Request,
    RequestError,
    encode_error,
    encode_event,
    encode_result,
    parse_request,
)
from edgegw.security.quiet_log import QuietLog
from edgegw.services.errors import BadRequest, Conflict, NotFound, ServiceError, Unavailable
from edgegw.tasks import TaskOwner

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[Any]]
"""An op's implementation: JSON arguments in, a JSON-able result out (or a ControlError)."""

_MAX_UNIX_PATH = 107  # sun_path is 108 bytes including the terminating NUL
_MAX_TOPICS = 64


class ControlSocketError(RuntimeError):
    """The control socket cannot be set up at the configured path."""


class AnotherInstanceRunning(ControlSocketError):
    """Something already answers on the control socket: another edgegw is running."""


@dataclass(frozen=True, slots=True)
class _Op:
    handler: Handler
    admin: bool
    description: str


class ControlServer:
    """The control socket. ``register`` ops, ``start``, ``publish`` events, ``close``."""

    def __init__(
        self,
        path: Path,
        *,
        group: str | None = None,
        clock: Callable[[], float] = time.time,
        admin_uids: Collection[int] | None = None,
        admin_group: str | None = None,
        max_clients: int = 64,
        max_clients_per_uid: int = 16,
        reserved_admin_slots: int = 8,
        max_inflight: int = 8,
        max_queued_events: int = 256,
    ) -> None:
        """``admin_uids`` defaults to root and the daemon's own uid; members of
        ``admin_group`` (a group name) may call admin ops too. Read-only users hold at most
        ``max_clients_per_uid`` connections each and leave ``reserved_admin_slots`` of the
        ``max_clients`` to the admins."""
        self.path = Path(path)
        self._group = group
        self._admin_group = admin_group or None
        self._admin_gid: int | None = None
        self._clock = clock
        self._admin_uids = frozenset(admin_uids if admin_uids is not None else {0, os.getuid()})
        self._max_clients = max_clients
        self._refusals = QuietLog(log)
        self._max_per_uid = max_clients_per_uid
        self._read_only_slots = max(0, max_clients - reserved_admin_slots)
        self._max_inflight = max_inflight
        self._max_queued_events = max_queued_events
        self._ops: dict[str, _Op] = {}
        self._builtins: dict[str, Callable[[Connection, dict[str, Any]], Awaitable[Any]]] = {
            "ping": self._ping,
            "ops": self._list_ops,
            "subscribe": self._subscribe,
        }
        self._builtin_help = {
            "ping": "check that the daemon answers; returns its clock",
            "ops": "list the operations, whether they need admin rights and whether you have them",
            "subscribe": "receive events for topics (args: topics, e.g. ['charger.*']); "
            "replaces this connection's earlier subscription",
        }
        self._connections: set[Connection] = set()
        self._numbers = itertools.count(1)
        self._tasks = TaskOwner("control")
        self._server: asyncio.Server | None = None
        self._identity: tuple[int, int] | None = None
        self._closing = False

    # ------------------------------------------------------------------ registry

    def register(
        self, op: str, handler: Handler, *, admin: bool = False, description: str = ""
    ) -> None:
        """Make ``op`` callable. ``admin`` ops are for root, the daemon's user and the admin
        group only."""
        if not NAME_PATTERN.fullmatch(op):
            raise ValueError(f"op name {op!r} must be dotted lower-case words, e.g. 'sync.status'")
        if op in self._builtins:
            raise ValueError(f"op {op!r} is built in")
        if op in self._ops:
            raise ValueError(f"op {op!r} is already registered")
        self._ops[op] = _Op(handler, admin, description)

    def publish(self, topic: str, data: Any) -> int:
        """Queue an event for every subscriber of ``topic``; returns how many got it.

        Encodes once for all subscribers. Raises ``TypeError``/``ValueError`` if ``data`` is not
        JSON or too large for one line: that is the caller's bug, not a client's.
        """
        if not NAME_PATTERN.fullmatch(topic):
            raise ValueError(f"topic {topic!r} must be dotted lower-case words")
        line: bytes | None = None
        delivered = 0
        for connection in list(self._connections):
            if connection.wants(topic):
                if line is None:
                    line = encode_event(topic, data)
                if connection.offer(line):
                    delivered += 1
        return delivered

    def clients(self) -> list[ClientInfo]:
        return [c.info() for c in self._connections]

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Create the socket and accept clients. Raises :class:`ControlSocketError`."""
        path = self.path
        if len(os.fsencode(path)) > _MAX_UNIX_PATH:
            raise ControlSocketError(
                f"control socket path {path} is longer than {_MAX_UNIX_PATH} bytes"
            )
        if self._server is not None or self._closing:
            raise RuntimeError("a ControlServer is started once")
        gid = self._group_id()
        self._admin_gid = self._admin_group_id()
        self._make_parent(gid)
        await self._refuse_live_socket()
        try:
            self._server = await self._listen(gid)
        except OSError as exc:
            raise ControlSocketError(f"cannot create the control socket {path}: {exc}") from exc
        st = os.lstat(path)
        self._identity = (st.st_dev, st.st_ino)
        log.info("control socket listening on %s (mode %o)", path, stat.S_IMODE(st.st_mode))

    async def _listen(self, gid: int | None) -> asyncio.Server:
        """Bind in a private directory, set mode and group, listen, then move into place."""
        path = self.path
        private = Path(tempfile.mkdtemp(prefix=".", dir=path.parent))  # mode 0700
        staged = private / "s"
        try:
            if len(os.fsencode(staged)) > _MAX_UNIX_PATH:
                raise ControlSocketError(f"control socket directory {path.parent} is too long")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.bind(os.fsdecode(staged))
                staged.chmod(0o660 if gid is not None else 0o600)
                if gid is not None:
                    try:
                        os.chown(staged, -1, gid)
                    except PermissionError as exc:
                        log.warning(
                            "cannot give the control socket to group %s (%s); "
                            "only the daemon's user and root can use it",
                            self._group,
                            exc,
                        )
                        staged.chmod(0o600)
                server = await asyncio.start_unix_server(self._accept, sock=sock)
            except BaseException:
                sock.close()
                raise
            try:
                staged.replace(path)  # atomic; replaces a stale socket file
            except BaseException:
                server.close()
                raise
            return server
        finally:
            shutil.rmtree(private, ignore_errors=True)

    async def close(self) -> None:
        """Stop accepting, cut every client, wait for their tasks, remove our socket file."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            connection.abort()
        await self._tasks.close()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        if self._identity is not None:
            # Only remove the file if it is still ours (not one a newer daemon put there).
            with contextlib.suppress(FileNotFoundError):
                st = os.lstat(self.path)
                if (st.st_dev, st.st_ino) == self._identity:
                    self.path.unlink()
            self._identity = None

    async def __aenter__(self) -> ControlServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _group_id(self) -> int | None:
        if self._group is None:
            return None
        try:
            return grp.getgrnam(self._group).gr_gid
        except KeyError:
            log.warning(
                "control socket group %s does not exist; "
                "only the daemon's user and root can use the socket (mode 0600)",
                self._group,
            )
            return None

    def _admin_group_id(self) -> int | None:
        if self._admin_group is None:
            return None
        try:
            gid = grp.getgrnam(self._admin_group).gr_gid
        except KeyError:
            log.warning(
                "control admin group %s does not exist; only root and the daemon's user may "
                "run admin ops",
                self._admin_group,
            )
            return None
        if self._group is not None and self._admin_group != self._group:
            log.info(
                "members of %s may run admin ops; they reach the control socket only if they "
                "are in %s too",
                self._admin_group,
                self._group,
            )
        return gid

    def _is_admin(self, sock: Any, peer: Peer) -> bool:
        if peer.uid in self._admin_uids:
            return True
        gid = self._admin_gid
        if gid is None:
            return False
        if peer.gid == gid:
            return True
        groups = peer_groups(sock)
        if groups is None:
            groups = user_groups(peer.uid, peer.gid)
        return gid in groups

    def _make_parent(self, gid: int | None) -> None:
        parent = self.path.parent
        if parent.is_dir():
            return
        try:
            parent.mkdir(mode=0o750, parents=True)
            parent.chmod(0o750)  # mkdir's mode is filtered by the umask
            if gid is not None:
                # Group members must be able to reach the socket inside it.
                with contextlib.suppress(PermissionError):
                    os.chown(parent, -1, gid)
        except OSError as exc:
            raise ControlSocketError(
                f"cannot create the control socket directory {parent}: {exc}"
            ) from exc

    async def _refuse_live_socket(self) -> None:
        path = self.path
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise ControlSocketError(f"{path} exists and is not a socket; not replacing it")
        try:
            async with asyncio.timeout(2):
                _, writer = await asyncio.open_unix_connection(os.fsdecode(path))
        except (ConnectionRefusedError, FileNotFoundError):
            log.info("replacing stale control socket %s left by an earlier run", path)
            return
        except TimeoutError:
            pass  # accepted into a full backlog: alive, only busy
        except OSError as exc:
            raise ControlSocketError(f"cannot check whether {path} is in use: {exc}") from exc
        else:
            writer.close()
        raise AnotherInstanceRunning(
            f"another edgegw is running: {path} accepts connections "
            "(stop it first, e.g. `systemctl stop edgegw`)"
        )

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closing:
            writer.transport.abort()
            return
        sock = writer.get_extra_info("socket")
        try:
            peer = peer_of(sock)
        except OSError as exc:
            log.warning("control client refused: no peer credentials (%s)", exc)
            writer.transport.abort()
            return
        admin = self._is_admin(sock, peer)
        full = self._no_slot_for(peer, admin)
        if full is not None:
            self._refusals.warning(  # a user reconnecting in a loop writes one line a minute
                f"uid {peer.uid}",
                "control client pid %d uid %d refused: %s (%d clients connected)",
                peer.pid,
                peer.uid,
                full,
                len(self._connections),
            )
            writer.write(encode_error(None, ErrorCode.UNAVAILABLE, f"{full}; try again later"))
            writer.close()
            return
        connection = Connection(
            next(self._numbers),
            reader,
            writer,
            peer,
            admin=admin,
            connected_at=self._clock(),
            max_inflight=self._max_inflight,
            max_queued_events=self._max_queued_events,
            dispatch=self._dispatch,
            forget=self._forget,
        )
        self._connections.add(connection)
        log.debug("control %s connected", connection.describe())
        self._tasks.spawn(connection.run(), connection.name)

    def _no_slot_for(self, peer: Peer, admin: bool) -> str | None:
        """Why ``peer`` gets no connection now (None: it does)."""
        if len(self._connections) >= self._max_clients:
            return f"too many control clients ({self._max_clients})"
        if admin:
            return None  # the reserved slots are theirs
        read_only = [c for c in self._connections if not c.admin]
        if sum(c.peer.uid == peer.uid for c in read_only) >= self._max_per_uid:
            return f"uid {peer.uid} already has {self._max_per_uid} control connections"
        if len(read_only) >= self._read_only_slots:
            return (
                f"the control slots left ({self._max_clients - len(self._connections)}) are "
                "kept for root, the edgegw user and the admin group"
            )
        return None

    def _forget(self, connection: Connection) -> None:
        self._connections.discard(connection)

    # ------------------------------------------------------------------ requests

    async def _dispatch(self, connection: Connection, line: bytes) -> bytes:
        try:
            request = parse_request(line)
        except RequestError as exc:
            return encode_error(exc.request_id, exc.code, exc.message)
        try:
            result = await self._run(connection, request)
        except ControlError as exc:
            return encode_error(request.id, exc.code, exc.message)
        try:
            return encode_result(request.id, result)
        except LineTooLong as exc:
            log.warning("control op %s: answer too large (%s)", request.op, exc)
            return encode_error(
                request.id,
                ErrorCode.TOO_LARGE,
                f"the answer to {request.op!r} is longer than {MAX_LINE} bytes",
            )
        except (TypeError, ValueError) as exc:
            log.error("control op %s returned a result that is not JSON: %s", request.op, exc)
            return encode_error(request.id, ErrorCode.INTERNAL, _internal_message(request.op))

    async def _run(self, connection: Connection, request: Request) -> Any:
        op, args = request.op, request.args
        handler: Handler
        builtin = self._builtins.get(op)
        if builtin is not None:
            handler = functools.partial(builtin, connection)
        else:
            registered = self._ops.get(op)
            if registered is None:
                raise ControlError(
                    ErrorCode.UNKNOWN_OP,
                    f"unknown op {op!r}; the 'ops' op lists the available ones",
                )
            if registered.admin:
                self._check_admin(connection, op)
            handler = registered.handler
        try:
            return await handler(args)
        except ControlError:
            raise
        except ServiceError as exc:  # a use case refused: its words, under its error code
            raise ControlError(_code_of(exc), str(exc)) from None
        except Exception:
            log.exception("control op %s failed", op)
            raise ControlError(ErrorCode.INTERNAL, _internal_message(op)) from None

    def _check_admin(self, connection: Connection, op: str) -> None:
        peer = connection.peer
        if not connection.admin:
            log.warning("control: uid %d (pid %d) refused admin op %s", peer.uid, peer.pid, op)
            who = (
                "root or the edgegw user"
                if self._admin_gid is None
                else f"root, the edgegw user or a member of group {self._admin_group}"
            )
            raise ControlError(
                ErrorCode.PERMISSION_DENIED,
                f"{op!r} changes the gateway and needs {who}; "
                f"uid {peer.uid} may use read-only ops only",
            )
        log.info("control: uid %d (pid %d) calls %s", peer.uid, peer.pid, op)

    async def _ping(self, connection: Connection, args: dict[str, Any]) -> Any:
        return {"pong": True, "time": self._clock()}

    async def _list_ops(self, connection: Connection, args: dict[str, Any]) -> Any:
        listing = [
            {"op": name, "admin": False, "allowed": True, "description": text}
            for name, text in self._builtin_help.items()
        ]
        listing += [
            {
                "op": name,
                "admin": op.admin,
                "allowed": connection.admin or not op.admin,
                "description": op.description,
            }
            for name, op in self._ops.items()
        ]
        return sorted(listing, key=lambda entry: str(entry["op"]))

    async def _subscribe(self, connection: Connection, args: dict[str, Any]) -> Any:
        topics = args.get("topics")
        if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
            raise ControlError(
                ErrorCode.BAD_ARGS, "'topics' must be a list of topic names, e.g. ['charger.*']"
            )
        if len(topics) > _MAX_TOPICS:
            raise ControlError(ErrorCode.BAD_ARGS, f"at most {_MAX_TOPICS} topics")
        bad = [t for t in topics if not TOPIC_PATTERN.fullmatch(t)]
        if bad:
            raise ControlError(
                ErrorCode.BAD_ARGS,
                f"bad topic(s) {', '.join(map(repr, bad))}: use names like 'charger.status', "
                "prefixes like 'charger.*', or '*'",
            )
        connection.topics = tuple(sorted(set(topics)))
        return {"topics": list(connection.topics)}


def _code_of(error: ServiceError) -> ErrorCode:
    for kind, code in _SERVICE_CODES:
        if isinstance(error, kind):
            return code
    return ErrorCode.INTERNAL


_SERVICE_CODES: Final = (
    (BadRequest, ErrorCode.BAD_ARGS),
    (NotFound, ErrorCode.NOT_FOUND),
    (Conflict, ErrorCode.CONFLICT),
    (Unavailable, ErrorCode.UNAVAILABLE),
)


def _internal_message(op: str) -> str:
    return f"{op!r} failed inside edgegw; the daemon's log has the details"
