"""OCPP-J RPC frames: parse and build ``[2|3|4, id, ...]`` arrays, keeping the raw text.

Frames are handled raw so the gateway relays what it forwards byte for byte; parsing only
extracts what routing needs. Errors say which CALLERROR (OCPP-J 1.6 spelling) is due, or that
the frame must be dropped because no answer is possible.

Numbers are held to what every peer and the database can represent: ``NaN`` and ``Infinity``
(which Python's json reads although they are not JSON), floats beyond a double and integers
beyond a signed 64-bit integer (SQLite's) are refused here, with the frame's own message id,
so such a value is never stored and never forwarded, whether or not schemas are checked. The
checks are json's own ``parse_*`` hooks: free for frames without numbers and one short call
per number otherwise.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

CALL = 2
CALLRESULT = 3
CALLERROR = 4
CALLRESULTERROR = 5  # OCPP 2.1
SEND = 6  # OCPP 2.1
OCPP21_TYPES = (CALLRESULTERROR, SEND)
"""Not routed here: only a 2.1 link relays them, untouched (:class:`FrameError`)."""
MAX_MESSAGE_ID_LENGTH = 36
UNKNOWN_ID = "-1"
INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
_SHORT_INT = 18  # digits (and sign) that cannot leave the int64 range
_LONGEST_INT = 20  # "-9223372036854775808"


@dataclass(frozen=True, slots=True)
class Call:
    id: str
    action: str
    payload: dict[str, Any]
    raw: str


@dataclass(frozen=True, slots=True)
class CallResult:
    id: str
    payload: dict[str, Any]
    raw: str


@dataclass(frozen=True, slots=True)
class CallError:
    id: str
    code: str
    description: str
    details: dict[str, Any]
    raw: str


Frame = Call | CallResult | CallError


class FrameError(ValueError):
    """A frame that cannot be routed.

    ``reply`` is true when a CALLERROR should be sent back (with ``message_id``, ``"-1"`` if the
    id could not be read); false when the frame must just be dropped, as OCPP-J says for unknown
    message types and for broken answers (an answer to an answer would make no sense).
    """

    def __init__(
        self,
        code: str,
        description: str,
        *,
        message_id: str,
        reply: bool,
        message_type: int | None = None,
    ) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.message_id = message_id
        self.reply = reply
        self.message_type = message_type
        """An OCPP 2.1 type (5 CALLRESULTERROR, 6 SEND) when that is why the frame failed: a
        2.1 link relays it as it is."""


class _Unrepresentable(ValueError):
    """A number in the frame no peer can be trusted with (raised from inside json)."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


def _shown(text: str) -> str:
    """A number from outside as it may be quoted in an answer: never whole when huge."""
    return text if len(text) <= 24 else f"{text[:12]}...({len(text)} characters)"


def _parse_int(text: str) -> int:
    if len(text) <= _SHORT_INT:
        return int(text)
    if len(text) <= _LONGEST_INT:
        value = int(text)
        if INT_MIN <= value <= INT_MAX:
            return value
    raise _Unrepresentable(
        "TypeConstraintViolation",
        f"integer {_shown(text)} is out of range (at most 64-bit signed: {INT_MIN} to {INT_MAX})",
    )


def _parse_float(text: str) -> float:
    value = float(text)
    if math.isfinite(value):
        return value
    raise _Unrepresentable(
        "TypeConstraintViolation", f"number {_shown(text)} is too large for a 64-bit float"
    )


def _parse_constant(name: str) -> Any:
    raise _Unrepresentable(
        "FormationViolation", f"{name} is not a JSON number (JSON has no NaN or Infinity)"
    )


def _lenient_int(text: str) -> int:
    return int(text) if len(text) <= _SHORT_INT else 0


def _zero(text: str) -> float:
    return 0.0


_DECODER = json.JSONDecoder(
    parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant
)
# Reads a frame the checked decoder refused, only to find the message id to answer with.
_LENIENT = json.JSONDecoder(parse_int=_lenient_int, parse_float=_zero, parse_constant=_zero)


def _dumps(value: Any) -> str:
    # ASCII: an echoed lone surrogate ("\ud800" in a message id) stays an escape, never a
    # character no encoder (the socket's, SQLite's) can write.
    return json.dumps(value, separators=(",", ":"))


def parse(data: str | bytes) -> Frame:
    """Parse one WebSocket message into a frame, or raise :class:`FrameError`."""
    if isinstance(data, bytes):
        raise FrameError(
            "FormationViolation",
            "binary WebSocket frames are not OCPP-J; send text frames",
            message_id=UNKNOWN_ID,
            reply=True,
        )
    unrepresentable: _Unrepresentable | None = None
    try:
        try:
            msg = _DECODER.decode(data)
        except _Unrepresentable as exc:
            unrepresentable = exc  # answered below, under the frame's own message id
            msg = _LENIENT.decode(data)
    except (json.JSONDecodeError, RecursionError):
        raise FrameError(
            "FormationViolation", "message is not valid JSON", message_id=UNKNOWN_ID, reply=True
        ) from None
    if not isinstance(msg, list) or not msg:
        raise FrameError(
            "FormationViolation",
            "message is not an OCPP-J array [type, id, ...]",
            message_id=UNKNOWN_ID,
            reply=True,
        )
    kind = msg[0]
    if kind not in (CALL, CALLRESULT, CALLERROR) or isinstance(kind, bool):
        raise FrameError(
            "ProtocolError",
            f"unknown message type {kind!r}",
            message_id=UNKNOWN_ID,
            reply=False,
            message_type=kind if kind in OCPP21_TYPES else None,
        )
    message_id = msg[1] if len(msg) > 1 else None
    if not isinstance(message_id, str) or not message_id or len(message_id) > MAX_MESSAGE_ID_LENGTH:
        raise FrameError(
            "ProtocolError",
            "message id must be a non-empty string of at most 36 characters",
            message_id=UNKNOWN_ID,
            reply=kind == CALL,
        )
    if unrepresentable is not None:
        raise FrameError(
            unrepresentable.code,
            unrepresentable.description,
            message_id=message_id,
            reply=kind == CALL,
        )
    if kind == CALL:
        if len(msg) != 4 or not isinstance(msg[2], str) or not isinstance(msg[3], dict):
            raise FrameError(
                "ProtocolError",
                "a CALL must be [2, id, action, {payload}]",
                message_id=message_id,
                reply=True,
            )
        return Call(message_id, msg[2], msg[3], data)
    if kind == CALLRESULT:
        if len(msg) != 3 or not isinstance(msg[2], dict):
            raise FrameError(
                "ProtocolError",
                "a CALLRESULT must be [3, id, {payload}]",
                message_id=message_id,
                reply=False,
            )
        return CallResult(message_id, msg[2], data)
    if (
        len(msg) not in (4, 5)
        or not isinstance(msg[2], str)
        or not isinstance(msg[3], str)
        or (len(msg) == 5 and not isinstance(msg[4], dict))
    ):
        raise FrameError(
            "ProtocolError",
            "a CALLERROR must be [4, id, code, description, {details}]",
            message_id=message_id,
            reply=False,
        )
    return CallError(message_id, msg[2], msg[3], msg[4] if len(msg) == 5 else {}, data)


def make_call(message_id: str, action: str, payload: dict[str, Any]) -> Call:
    raw = _dumps([CALL, message_id, action, payload])
    return Call(message_id, action, payload, raw)


def make_result(message_id: str, payload: dict[str, Any]) -> CallResult:
    return CallResult(message_id, payload, _dumps([CALLRESULT, message_id, payload]))


def make_error(
    message_id: str, code: str, description: str = "", details: dict[str, Any] | None = None
) -> CallError:
    details = details or {}
    raw = _dumps([CALLERROR, message_id, code, description[:255], details])
    return CallError(message_id, code, description[:255], details, raw)


def with_id(call: Call, message_id: str) -> Call:
    """The same call under another message id (replays use fresh ids)."""
    return make_call(message_id, call.action, call.payload)
