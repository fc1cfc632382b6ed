"""The control socket's wire format: JSON lines over a Unix stream socket.

One JSON object per line, UTF-8, at most :data:`MAX_LINE` bytes (newline excluded), so neither
side ever buffers an unbounded line from its peer:

- request: ``{"id": 7, "op": "sync.status", "args": {...}}`` (``args`` may be left out);
- answer: ``{"id": 7, "ok": true, "result": ...}`` or
  ``{"id": 7, "ok": false, "error": {"code": "unknown_op", "message": "..."}}``; an answer to a
  line that was not a readable request carries ``"id": null``;
- event, pushed to a connection after ``{"op": "subscribe", "args": {"topics": [...]}}``:
  ``{"event": "charger.status", "data": {...}}``.

Answers may arrive in any order (each carries its request's id) and events interleave with them.
This module is pure: framing, encoding and parsing, no I/O, shared by the server and clients.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any, Literal, TypeVar, cast

T = TypeVar("T")

MAX_LINE = 1024 * 1024
"""The longest line either side accepts, in bytes, without its newline."""

_NAME = r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*"
NAME_PATTERN = re.compile(_NAME)
"""Op and event-topic names: dotted lower-case words, e.g. ``sync.status``."""
TOPIC_PATTERN = re.compile(rf"\*|{_NAME}(?:\.\*)?")
"""What a subscriber may ask for: a topic, a prefix such as ``charger.*``, or ``*``."""


class ErrorCode(StrEnum):
    """Why a request failed; the client maps these to its exceptions."""

    BAD_REQUEST = "bad_request"
    """The line is not a request: malformed JSON, not an object, no ``op``, a bad ``id``."""
    TOO_LARGE = "too_large"
    """The request line, or the answer to it, is longer than :data:`MAX_LINE`."""
    UNKNOWN_OP = "unknown_op"
    BAD_ARGS = "bad_args"
    PERMISSION_DENIED = "permission_denied"
    NOT_FOUND = "not_found"
    """The op is fine but the thing it names (a charger, a card) does not exist."""
    CONFLICT = "conflict"
    """The op cannot be done in the current state (e.g. a card that is already enrolled)."""
    UNAVAILABLE = "unavailable"
    """Not possible right now (a charger offline, too many control clients); worth a retry."""
    INTERNAL = "internal"
    """The daemon failed; details are in its log, never sent to the client."""


class ControlError(Exception):
    """An error a handler raises to give the client exactly this code and message."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.value!r}, {self.message!r})"


class RequestError(ControlError):
    """A line that could not be read as a request; ``request_id`` is known when it parsed."""

    def __init__(self, code: ErrorCode, message: str, request_id: int | None = None) -> None:
        super().__init__(code, message)
        self.request_id = request_id


class LineTooLong(ValueError):
    """A message that would not fit in one protocol line."""


@dataclass(frozen=True, slots=True)
class Request:
    id: int
    op: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Failure:
    code: str
    """An :class:`ErrorCode` value, kept as text so a newer daemon's codes still read."""
    message: str


@dataclass(frozen=True, slots=True)
class Reply:
    id: int | None
    result: Any = None
    failure: Failure | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


@dataclass(frozen=True, slots=True)
class Event:
    topic: str
    data: Any


# --------------------------------------------------------------------------------- framing


class Framing(Enum):
    TOO_LONG = "too_long"
    """Stands in for a line longer than the bound; its bytes were discarded."""


class LineFramer:
    """Splits a byte stream into lines without ever holding more than ``max_line`` bytes.

    A line over the bound is reported once as :attr:`Framing.TOO_LONG` and skipped up to its
    newline, so the stream stays usable after it (a peer that sent one bad line keeps working).
    """

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._max = max_line
        self._buf = bytearray()
        self._skipping = False

    def feed(self, data: bytes) -> list[bytes | Literal[Framing.TOO_LONG]]:
        out: list[bytes | Literal[Framing.TOO_LONG]] = []
        start = 0
        while True:
            newline = data.find(b"\n", start)
            if newline < 0:
                if not self._skipping:
                    self._buf += data[start:]
                    if len(self._buf) > self._max:
                        self._buf.clear()
                        self._skipping = True
                        out.append(Framing.TOO_LONG)
                return out
            if self._skipping:
                self._skipping = False
            elif len(self._buf) + newline - start > self._max:
                self._buf.clear()
                out.append(Framing.TOO_LONG)
            else:
                self._buf += data[start:newline]
                out.append(bytes(self._buf))
                self._buf.clear()
            start = newline + 1

    def rest(self) -> bytes:
        """What is left after the last newline (a final line a peer did not terminate)."""
        if self._skipping:
            return b""
        line = bytes(self._buf)
        self._buf.clear()
        return line


# -------------------------------------------------------------------------------- encoding


def encode(message: Mapping[str, Any]) -> bytes:
    """One protocol line: compact, strict JSON (no NaN), newline-terminated.

    Raises ``TypeError``/``ValueError`` for what JSON cannot carry, :class:`LineTooLong` when
    the line would exceed :data:`MAX_LINE`.
    """
    text = json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    line = text.encode()
    if len(line) > MAX_LINE:
        raise LineTooLong(f"message of {len(line)} bytes exceeds the {MAX_LINE}-byte line limit")
    return line + b"\n"


def encode_request(request_id: int, op: str, args: Mapping[str, Any]) -> bytes:
    return encode({"id": request_id, "op": op, "args": args})


def encode_result(request_id: int, result: Any) -> bytes:
    return encode({"id": request_id, "ok": True, "result": result})


def encode_error(request_id: int | None, code: ErrorCode, message: str) -> bytes:
    return encode({"id": request_id, "ok": False, "error": {"code": code, "message": message}})


def encode_event(topic: str, data: Any) -> bytes:
    return encode({"event": topic, "data": data})


# --------------------------------------------------------------------------------- parsing


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _load(line: bytes) -> Any:
    # Decode first: json.loads(bytes) would also guess UTF-16/32; the protocol is UTF-8 only.
    return json.loads(line.decode("utf-8"), parse_constant=_no_constants)


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_request(line: bytes) -> Request:
    """Read one request line; raises :class:`RequestError` saying what is wrong with it."""
    try:
        message = _load(line)
    except UnicodeDecodeError:
        raise RequestError(ErrorCode.BAD_REQUEST, "request line is not valid UTF-8") from None
    except ValueError as exc:
        raise RequestError(ErrorCode.BAD_REQUEST, f"malformed JSON: {exc}") from None
    if not isinstance(message, dict):
        raise RequestError(
            ErrorCode.BAD_REQUEST,
            f"a request must be a JSON object, not {type(message).__name__}",
        )
    request_id = message.get("id")
    if not _is_id(request_id):
        raise RequestError(ErrorCode.BAD_REQUEST, "a request needs an integer 'id'")
    assert isinstance(request_id, int)
    op = message.get("op")
    if not isinstance(op, str) or not op:
        raise RequestError(ErrorCode.BAD_REQUEST, "a request needs an 'op' string", request_id)
    unknown = sorted(set(message) - {"id", "op", "args"})
    if unknown:
        raise RequestError(
            ErrorCode.BAD_REQUEST,
            f"unknown request field(s) {', '.join(unknown)}; allowed: id, op, args",
            request_id,
        )
    args = message.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise RequestError(
            ErrorCode.BAD_ARGS,
            f"'args' must be a JSON object, not {type(args).__name__}",
            request_id,
        )
    return Request(request_id, op, args)


def parse_server_message(line: bytes) -> Reply | Event:
    """Read one line from the daemon; raises ``ValueError`` if it is not an answer or event."""
    try:
        message = _load(line)
    except ValueError as exc:  # includes UnicodeDecodeError
        raise ValueError(f"the daemon sent malformed JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ValueError(f"the daemon sent {type(message).__name__}, not an object")
    if "event" in message:
        topic = message["event"]
        if not isinstance(topic, str):
            raise ValueError("the daemon sent an event without a topic string")
        return Event(topic, message.get("data"))
    request_id = message.get("id")
    if request_id is not None and not _is_id(request_id):
        raise ValueError(f"the daemon sent an answer with id {request_id!r}")
    ok = message.get("ok")
    if ok is True:
        return Reply(request_id, result=message.get("result"))
    error = message.get("error")
    if ok is not False or not isinstance(error, dict):
        raise ValueError("the daemon sent an answer with neither a result nor an error")
    code, text = error.get("code"), error.get("message")
    if not isinstance(code, str) or not isinstance(text, str):
        raise ValueError("the daemon sent an error without a code and message")
    return Reply(request_id, failure=Failure(code, text))


def topic_matches(pattern: str, topic: str) -> bool:
    """``*`` matches every topic, ``charger.*`` every topic below ``charger``, else equality."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return topic.startswith(pattern[:-1])
    return pattern == topic


# ---------------------------------------------------------------------------- handler aid


class _Missing(Enum):
    MISSING = "missing"


def get_arg(
    args: Mapping[str, Any],
    name: str,
    kind: type[T],
    default: T | Literal[_Missing.MISSING] = _Missing.MISSING,
) -> T:
    """Take ``args[name]`` as a ``kind``, or raise ``bad_args`` naming the argument.

    For handlers: ``charger = get_arg(args, "charger", str)``. ``bool`` is not accepted as an
    ``int``; an ``int`` is accepted as a ``float``.
    """
    if name not in args or args[name] is None:
        if default is _Missing.MISSING:
            raise ControlError(ErrorCode.BAD_ARGS, f"missing argument {name!r}")
        return default
    value = args[name]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return cast(T, float(value))
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    raise ControlError(
        ErrorCode.BAD_ARGS,
        f"argument {name!r} must be {kind.__name__}, not {type(value).__name__}",
    )
