"""Simulated OCPP 1.6J peers: a cloud CSMS, charge points and a fleet of charge points.

The gateway sits between chargers and a cloud CSMS, so every test, ``edgegw demo`` and an
installer trying a site before the hardware arrives need believable peers on both sides. They
live in :mod:`edgegw.sim.cloud` (:class:`~edgegw.sim.cloud.SimCloud`),
:mod:`edgegw.sim.charger` (:class:`~edgegw.sim.charger.SimCharger`) and
:mod:`edgegw.sim.fleet` (:class:`~edgegw.sim.fleet.SimFleet`).

This package module holds what both sides share: the frame tap that records every raw text
frame (tests compare what the gateway relayed byte for byte), the ``ocpp`` ChargePoint base
whose answers come from one plain ``answer(action, payload)`` function working on OCPP's
camelCase JSON, the generic CALL helper, and the error raised when a peer answers CALLERROR.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar, cast

from ocpp.charge_point import (
    camel_to_snake_case,
    remove_nones,
    serialize_as_dict,
    snake_to_camel_case,
)
from ocpp.exceptions import GenericError, OCPPError
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call, call_result
from websockets.asyncio.connection import Connection
from websockets.exceptions import ConnectionClosed

__all__ = [
    "NOMINAL_VOLTAGE",
    "OCPP16",
    "AfterFn",
    "AnswerFn",
    "Frame",
    "FrameTap",
    "JsonDict",
    "OcppPeer",
    "SimCallError",
    "Waiters",
    "ocpp_error",
    "parse_timestamp",
    "route",
    "route_after",
    "utc_timestamp",
]

OCPP16 = "ocpp1.6"
"""The only WebSocket subprotocol the simulators speak."""

NOMINAL_VOLTAGE = 230.0
"""Line-to-neutral voltage used to turn W into A and back (OCPP 1.6 uses nominal, not measured)."""

Direction = Literal["in", "out"]
JsonDict = dict[str, Any]
AnswerFn = Callable[[str, JsonDict], Awaitable[JsonDict]]
AfterFn = Callable[[str, JsonDict, JsonDict], None]
T = TypeVar("T")

_KEEP_PER_DIRECTION = 256  # message ids remembered per direction to name the action of answers
_LIBRARY_TIMEOUT = 24 * 3600.0  # our own asyncio.timeout governs; the library's must never fire


class SimCallError(Exception):
    """The peer answered a CALL with a CALLERROR.

    ``code`` is the errorCode exactly as it was on the wire (OCPP 1.6 spellings such as
    ``FormationViolation`` included), so tests can assert on what the gateway relayed.
    """

    def __init__(
        self, code: str, description: str = "", details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(f"{code}: {description}" if description else code)
        self.code = code
        self.description = description
        self.details: dict[str, Any] = dict(details or {})


def ocpp_error(code: str, description: str) -> Exception:
    """Build the ``ocpp`` exception that makes the library answer CALLERROR ``code``."""
    for cls in OCPPError.__subclasses__():
        if getattr(cls, "code", None) == code:
            return cast(Exception, cls(description=description))
    return cast(Exception, GenericError(description=f"{code}: {description}"))


def utc_timestamp(ts: float) -> str:
    """OCPP dateTime for a POSIX time: UTC, millisecond precision, ``Z`` suffix."""
    text = datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def parse_timestamp(text: str) -> float:
    """POSIX time of an OCPP dateTime; a value without zone is taken as UTC."""
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


@dataclasses.dataclass(frozen=True, slots=True)
class Frame:
    """One text frame as it crossed the socket, parsed as far as OCPP-J allows.

    ``message_type`` is 2 (CALL), 3 (CALLRESULT), 4 (CALLERROR) or 0 when the frame is not an
    OCPP-J message at all. ``action`` of a CALLRESULT/CALLERROR is the action of the CALL it
    answers, when that CALL was seen on this connection. ``payload`` of a CALLERROR is
    ``{"errorCode", "errorDescription", "errorDetails"}``.
    """

    direction: Direction
    message_type: int
    message_id: str
    action: str | None
    payload: Any
    raw: str
    at: float


def _trim(mapping: MutableMapping[str, Any]) -> None:
    while len(mapping) > _KEEP_PER_DIRECTION:
        del mapping[next(iter(mapping))]


class FrameTap:
    """Stands in for the websockets connection given to ``ocpp.ChargePoint``.

    ``ChargePoint`` only calls ``recv()`` and ``send()``; wrapping them is the one place where
    the exact text of every frame is visible, so each frame is parsed into a :class:`Frame`
    and handed to ``on_frame`` before it is sent (so an answer can never be recorded before
    its question) or right after it is received.
    """

    def __init__(
        self,
        ws: Connection,
        on_frame: Callable[[Frame], None],
        on_unsent: Callable[[str], None] | None = None,
    ) -> None:
        self.ws = ws
        self._on_frame = on_frame
        self._on_unsent = on_unsent  # told the message id of a frame the closing socket dropped
        self._calls_in: dict[str, tuple[str, Any]] = {}  # id -> (action, payload) received
        self._actions_out: dict[str, str] = {}  # id -> action of CALLs we sent
        self._errors_in: dict[str, SimCallError] = {}  # CALLERRORs received, by id

    async def recv(self) -> str:
        data = await self.ws.recv()
        text = data if isinstance(data, str) else data.decode("utf-8", errors="replace")
        self._observe("in", text)
        return text

    async def send(self, text: str) -> None:
        self._observe("out", text)
        try:
            await self.ws.send(text)
        except ConnectionClosed:
            if self._on_unsent is not None:
                self._on_unsent(_message_id(text))
            raise

    def call_payload(self, message_id: str) -> Any:
        """Payload of a CALL received on this connection (camelCase, as on the wire)."""
        return self._calls_in[message_id][1]

    def pop_error(self, message_id: str) -> SimCallError | None:
        """The CALLERROR received for our CALL ``message_id``, if that is how it was answered."""
        return self._errors_in.pop(message_id, None)

    def _observe(self, direction: Direction, text: str) -> None:
        message_type, message_id, action, payload = 0, "", None, None
        try:
            msg = json.loads(text)
        except ValueError:
            msg = None
        if isinstance(msg, list) and len(msg) >= 3 and isinstance(msg[0], int):
            message_type, message_id = msg[0], str(msg[1])
            if message_type == 2:
                action = msg[2] if isinstance(msg[2], str) else None
                payload = msg[3] if len(msg) > 3 else None
                if action is not None and direction == "in":
                    self._calls_in[message_id] = (action, payload)
                    _trim(self._calls_in)
                elif action is not None:
                    self._actions_out[message_id] = action
                    _trim(self._actions_out)
            elif message_type in (3, 4):
                if direction == "in":
                    action = self._actions_out.pop(message_id, None)
                else:
                    seen = self._calls_in.get(message_id)
                    action = seen[0] if seen else None
                if message_type == 3:
                    payload = msg[2]
                else:
                    payload = {
                        "errorCode": msg[2],
                        "errorDescription": msg[3] if len(msg) > 3 else "",
                        "errorDetails": msg[4] if len(msg) > 4 else {},
                    }
                    if direction == "in":
                        self._errors_in[message_id] = SimCallError(
                            str(payload["errorCode"]),
                            str(payload["errorDescription"]),
                            payload["errorDetails"]
                            if isinstance(payload["errorDetails"], dict)
                            else {},
                        )
                        _trim(self._errors_in)
            else:
                payload = msg[2:]
        self._on_frame(
            Frame(
                direction=direction,
                message_type=message_type,
                message_id=message_id,
                action=action,
                payload=payload,
                raw=text,
                at=time.time(),
            )
        )


class _WireLogger(logging.LoggerAdapter[logging.Logger]):
    """Puts the ``ocpp`` library's per-frame logging at the level a simulator wants.

    The library logs every frame at INFO, each CALLERROR it answers with a traceback, and
    each one it receives as a warning. For a simulator frames are DEBUG, a deliberate
    CALLERROR (an ``OCPPError``) is DEBUG too, and the caller of a refused CALL already gets
    :class:`SimCallError`. Tracebacks of real bugs in answer functions are kept.
    """

    def info(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.debug(msg, *args, **kwargs)

    def warning(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.debug(msg, *args, **kwargs)

    def exception(self, msg: object, *args: object, **kwargs: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, OCPPError):
            self.debug("answered CALLERROR %s: %s", getattr(error, "code", "?"), error)
        else:
            self.error(msg, *args, exc_info=True, **kwargs)


def handles(action: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``ocpp.routing.on`` with a type mypy can see."""
    return cast(Callable[[Callable[..., Any]], Callable[..., Any]], on(action))


def route(action: str) -> Callable[..., Any]:
    """A ``@on(action)`` handler that hands the raw payload to :meth:`OcppPeer.answer_call`.

    Assign it in a class body as ``on_<name> = route(...)``; the ``ocpp`` router finds
    handlers by function name, so the name is set to match before decorating.
    """

    async def handler(self: OcppPeer, call_unique_id: str, **_: Any) -> Any:
        return await self.answer_call(action, call_unique_id)

    handler.__name__ = handler.__qualname__ = "on_" + _snake(action)
    return handles(action)(handler)


def route_after(action: str) -> Callable[..., Any]:
    """An ``@after(action)`` hook calling :meth:`OcppPeer.after_call` (synchronously).

    The hook is plain (not a coroutine) on purpose: the library would run an awaitable hook
    as an unowned task, and whatever follows an answer must be an owned, named task.
    """

    def hook(self: OcppPeer, call_unique_id: str, **_: Any) -> None:
        self.after_call(action, call_unique_id)

    hook.__name__ = hook.__qualname__ = "after_" + _snake(action)
    return cast(Callable[..., Any], after(action)(hook))


def _snake(action: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in action).lstrip("_")


class OcppPeer(ChargePoint):  # type: ignore[misc]  # ocpp ships no type information
    """An ``ocpp.v16.ChargePoint`` whose answers come from a plain function.

    ``answer(action, payload)`` receives the CALL payload exactly as it came over the wire
    (camelCase) and returns the CALLRESULT payload as a camelCase dict; raising an
    ``ocpp`` exception (see :func:`ocpp_error`) answers CALLERROR. ``after(action, payload,
    answer)`` runs once the answer has been sent. Keeping the decisions in plain functions
    makes them independent of the library's snake_case keyword convention.
    """

    def __init__(
        self,
        identity: str,
        tap: FrameTap,
        answer: AnswerFn,
        after_answer: AfterFn | None = None,
        *,
        logger_name: str = "edgegw.sim.wire",
    ) -> None:
        super().__init__(
            identity,
            tap,
            response_timeout=_LIBRARY_TIMEOUT,
            logger=_WireLogger(logging.getLogger(logger_name), {}),
        )
        self.tap = tap
        self._answer = answer
        self._after_answer = after_answer
        self._answers: dict[str, JsonDict] = {}

    async def answer_call(self, action: str, message_id: str) -> Any:
        payload = self.tap.call_payload(message_id)
        answer = await self._answer(action, payload if isinstance(payload, dict) else {})
        self._answers[message_id] = answer
        _trim(self._answers)
        return getattr(call_result, action)(**camel_to_snake_case(answer))

    def after_call(self, action: str, message_id: str) -> None:
        answer = self._answers.pop(message_id, None)
        if answer is not None and self._after_answer is not None:
            payload = self.tap.call_payload(message_id)
            self._after_answer(action, payload if isinstance(payload, dict) else {}, answer)

    async def serve(self) -> None:
        """Receive and route frames until the connection closes (then raises ConnectionClosed)."""
        await self.start()

    async def send_call(
        self,
        action: str,
        payload: Mapping[str, Any],
        *,
        timeout: float,
        validate: bool = True,
    ) -> JsonDict:
        """Send CALL ``action`` and return the CALLRESULT payload (camelCase).

        The request is built from the ``ocpp`` library's call class for ``action``, so it is
        schema-checked unless ``validate`` is false (tests that need a malformed CALL on the
        wire turn it off). A CALLERROR raises :class:`SimCallError`; no answer within
        ``timeout`` seconds raises :class:`TimeoutError`.
        """
        request_cls: Any = getattr(call, action, None)
        if not isinstance(request_cls, type) or not dataclasses.is_dataclass(request_cls):
            raise ValueError(f"{action!r} is not an OCPP 1.6 action")
        try:
            request = request_cls(**camel_to_snake_case(dict(payload)))
        except TypeError as exc:
            raise ValueError(f"payload does not fit {action}: {exc}") from exc
        message_id = str(uuid.uuid4())
        try:
            async with asyncio.timeout(timeout):
                result = await self.call(
                    request,
                    suppress=False,
                    unique_id=message_id,
                    skip_schema_validation=not validate,
                )
        except TimeoutError:
            raise TimeoutError(f"{self.id}: no answer to {action} within {timeout}s") from None
        except Exception as exc:
            error = self.tap.pop_error(message_id)
            if error is None:
                raise
            raise error from exc
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # ChargePoint.call waits with asyncio.wait_for, which on Python 3.11 returns the
            # result instead of raising when a cancel and the answer arrive together. A
            # swallowed cancel would leave the caller running after TaskOwner.close().
            raise asyncio.CancelledError
        return cast(JsonDict, snake_to_camel_case(remove_nones(serialize_as_dict(result))))


class Waiters(Generic[T]):
    """Lets coroutines wait for the first item (past or future) matching a predicate.

    Event-driven: every new item is offered to the pending predicates as it is produced, so
    nobody polls. A predicate that raises passes its exception to its waiter.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[Callable[[T], bool], asyncio.Future[T]]] = []

    def notify(self, item: T) -> None:
        for predicate, future in list(self._pending):
            if future.done():
                continue
            try:
                matched = predicate(item)
            except Exception as exc:
                future.set_exception(exc)
                continue
            if matched:
                future.set_result(item)

    async def wait(
        self, predicate: Callable[[T], bool], past: Iterable[T], timeout: float, what: str
    ) -> T:
        for item in past:
            if predicate(item):
                return item
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._pending.append(entry)
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}") from None
        finally:
            self._pending.remove(entry)


def _message_id(text: str) -> str:
    try:
        msg = json.loads(text)
    except ValueError:
        return ""
    return str(msg[1]) if isinstance(msg, list) and len(msg) > 1 else ""
