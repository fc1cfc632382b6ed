"""A table of ops answered by one service, in the daemon and in the CLI alike.

Some op families (``cards.*``, ``chargers.*``) are written once as a service over the store,
so that the CLI can answer them itself when the daemon is not running. Their table maps each
op name to an :class:`OpSpec`; :func:`run_op` answers one op from it (the CLI's way), and
:func:`register_ops` puts the whole table on the daemon's :class:`ControlServer`, making a
fresh service from the gateway's current parts for every call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from edgegw.control.protocol import ControlError, ErrorCode
from edgegw.control.server import ControlServer

S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class OpSpec(Generic[S]):
    """One op: its handler (a method of the service), whether it is admin-only, its help."""

    handler: Callable[[S, dict[str, Any]], Awaitable[Any]]
    admin: bool
    description: str


async def run_op(ops: Mapping[str, OpSpec[S]], service: S, op: str, args: Mapping[str, Any]) -> Any:
    """Answer ``op`` of the table ``ops`` with ``service``; UNKNOWN_OP when it has no such op."""
    spec = ops.get(op)
    if spec is None:
        raise ControlError(ErrorCode.UNKNOWN_OP, f"unknown op {op!r}")
    return await spec.handler(service, dict(args))


def register_ops(
    server: ControlServer, ops: Mapping[str, OpSpec[S]], service: Callable[[], S]
) -> None:
    """Register every op of ``ops`` on ``server``; each call is answered by ``service()``
    (which raises :class:`ControlError` while the daemon is not ready for it)."""
    for name, spec in ops.items():
        server.register(
            name, _bound(spec.handler, service), admin=spec.admin, description=spec.description
        )


def _bound(
    handler: Callable[[S, dict[str, Any]], Awaitable[Any]], service: Callable[[], S]
) -> Callable[[dict[str, Any]], Awaitable[Any]]:
    async def run(args: dict[str, Any]) -> Any:
        return await handler(service(), args)

    return run
