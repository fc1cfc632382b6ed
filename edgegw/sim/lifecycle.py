"""What every simulated peer does alike: used as an ``async with`` block, and asked whether it
is up. A server (a cloud) starts and stops; a client (a charger) connects and closes."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self


class StartedSim:
    """A simulated part that ``start()``s and ``stop()``s (``async with`` does both)."""

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


class ServedSim(StartedSim):
    """A simulated server: ``start()`` listens (port 0 picks one), ``stop()`` closes; the port
    stays the same across restarts."""

    _server: Any
    _port: int

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError(f"{type(self).__name__} has no port before its first start()")
        return self._port


class ConnectedSim:
    """A simulated client: ``connect()`` opens its connection, ``close()`` ends it."""

    _ws: Any
    _closed: Any  # asyncio.Event: set once the connection has ended

    async def connect(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self._ws is not None and not self._closed.is_set()
