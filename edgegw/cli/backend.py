"""Where a command's ops are answered: the running daemon, or this process on its store.

Many commands work whether the daemon runs or not. When it runs they ask it over the control
socket; when it does not they open its store themselves and answer the op with the daemon's
own code (a service of :mod:`edgegw.control`), and say so on stderr, so an installer can
prepare a site before the first start and read it after the last stop. :func:`daemon_or_store`
picks one; :func:`op_errors` turns a failed op, from either, into a message and an exit code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

from edgegw.cli.output import (
    EXIT_DAEMON_DOWN,
    EXIT_FAILURE,
    EXIT_USAGE,
    DaemonClient,
    fail,
    note,
    running_daemon,
)
from edgegw.config import Config
from edgegw.control.client import (
    ControlClientError,
    DaemonNotRunning,
    PermissionDenied,
    RemoteError,
)
from edgegw.control.protocol import ControlError, ErrorCode
from edgegw.store.db import StoreError

T = TypeVar("T")


class Backend(Protocol):
    """Runs ops for a command: the daemon, or the daemon's code on its store."""

    source: str
    """``daemon`` or ``store``: who answered (commands say it)."""

    def call(self, op: str, /, **args: Any) -> Any: ...


class DaemonBackend:
    """The running daemon, over its control socket."""

    source = "daemon"

    def __init__(self, client: DaemonClient) -> None:
        self._client = client

    def call(self, op: str, /, **args: Any) -> Any:
        return self._client.call(op, **args)


class StoreBackend(ABC):
    """Ops answered in this process on the daemon's store; subclasses open it in :meth:`call`.

    One event loop serves every call of a command (:class:`asyncio.Runner`), so paging
    through a long answer opens the store once. A subclass sets :attr:`touched` when the
    database files may have been created or written: they are then given to the daemon's
    user when the command ran as root (:func:`match_owner`).
    """

    source = "store"

    def __init__(self, config: Config) -> None:
        self.config = config
        self.touched = False
        self._runner = asyncio.Runner()
        self._ran = False
        quiet_logs()

    def __enter__(self) -> Self:
        self._runner.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._ran:
                self._runner.run(self.close())
        finally:
            self._runner.__exit__(kind, exc, tb)
        if self.touched:
            match_owner(self.config.store.path)

    @abstractmethod
    def call(self, op: str, /, **args: Any) -> Any:
        """Answer ``op`` with the daemon's own code, opening the store on the first call."""

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` on this command's event loop."""
        self._ran = True
        return self._runner.run(work)

    def store_path(self, *, create: bool) -> Path:
        """The store's file; without ``create``, a store that does not exist yet reads as an
        empty in-memory one (reading must not create it)."""
        path = self.config.store.path
        return path if create or path.exists() else Path(":memory:")

    @abstractmethod
    async def close(self) -> None:
        """Close what :meth:`call` opened."""


@contextmanager
def daemon_or_store(
    config: Config,
    json_mode: bool,
    local: Callable[[Config], StoreBackend],
    *,
    notice: str | None,
) -> Iterator[Backend]:
    """The running daemon, else ``local(config)`` on its store (``notice`` said on stderr)."""
    with op_errors(json_mode):
        client = running_daemon(config)
    if client is not None:
        yield DaemonBackend(client)
        return
    if notice:
        note(notice)
    with op_errors(json_mode), local(config) as store:
        yield store


def answered(backend: Backend, answer: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A command's JSON result: ``ok``, who answered, ``extra``, then the op's answer."""
    return {"ok": True, "source": backend.source, **extra, **answer}


def call_op(
    backend: AbstractContextManager[Backend],
    json_mode: bool,
    op: str,
    /,
    *,
    key: str | None = None,
    extra: Mapping[str, Any] | None = None,
    **args: Any,
) -> dict[str, Any]:
    """One op of ``backend`` (e.g. :func:`daemon_or_store`) as the command's JSON result
    (:func:`answered`); the answer goes under ``key`` when it is not an object."""
    with backend as used, op_errors(json_mode):
        answer = used.call(op, **args)
        return answered(used, answer if key is None else {key: answer}, **(extra or {}))


@contextmanager
def op_errors(json_mode: bool) -> Iterator[None]:
    """A failed op, from the daemon or from the store, as a message and an exit code."""
    try:
        yield
    except ControlError as exc:
        _fail_code(exc.code, exc.message, json_mode)
    except PermissionDenied as exc:
        hint = None if "sudo" in exc.message else "run the command with sudo"
        fail(exc.message, EXIT_FAILURE, hint, json_mode=json_mode)
    except DaemonNotRunning as exc:
        fail(str(exc), EXIT_DAEMON_DOWN, json_mode=json_mode)
    except RemoteError as exc:
        _fail_code(exc.code, exc.message, json_mode)
    except ControlClientError as exc:
        fail(str(exc), EXIT_FAILURE, json_mode=json_mode)
    except StoreError as exc:
        fail(str(exc), EXIT_FAILURE, json_mode=json_mode)
    except OSError as exc:
        fail(
            f"cannot use the store: {exc}",
            EXIT_FAILURE,
            "the database belongs to the edgegw user: run the command with sudo",
            json_mode=json_mode,
        )


def _fail_code(code: str, message: str, json_mode: bool) -> None:
    if code == ErrorCode.BAD_ARGS:
        fail(message, EXIT_USAGE, json_mode=json_mode)
    if code == ErrorCode.UNKNOWN_OP:
        fail(
            message,
            EXIT_FAILURE,
            "the running daemon is older than this command: restart it "
            "(`systemctl restart edgegw`)",
            json_mode=json_mode,
        )
    fail(message, EXIT_FAILURE, json_mode=json_mode)


def quiet_logs() -> None:
    """Keep the gateway's own log lines (meant for the journal) off the terminal when the CLI
    runs its code in-process; what matters is in the command's output."""
    logger = logging.getLogger("edgegw")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())


def match_owner(path: Path) -> None:
    """Give a database file root created to the owner of its directory (the daemon's user).

    An installer who runs ``sudo edgegw cards add`` before the first start would otherwise
    leave a root-owned 0600 database the daemon cannot open.
    """
    if os.geteuid() != 0:
        return
    with contextlib.suppress(OSError):
        owner = path.parent.stat()
        if owner.st_uid == 0:
            return
        for name in (path.name, f"{path.name}-wal", f"{path.name}-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.chown(path.parent / name, owner.st_uid, owner.st_gid)
