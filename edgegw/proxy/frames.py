"""OCPP-J RPC frames: parse and build ``[2|3|4, id, ...]`` arrays, keeping the raw text.

Frames are handled raw so the gateway relays what it forwards byte for byte; parsing only
extracts what routing needs. Errors say which CALLERROR (OCPP-J 1.6 spelling) is due, or that
the frame must be dropped because no answer is possible.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

CALL = 2
CALLRESULT = 3
CALLERROR = 4
MAX_MESSAGE_ID_LENGTH = 36
UNKNOWN_ID = "-1"


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

    def __init__(self, code: str, description: str, *, message_id: str, reply: bool) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.message_id = message_id
        self.reply = reply


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def parse(data: str | bytes) -> Frame:
    """Parse one WebSocket message into a frame, or raise :class:`FrameError`."""
    if isinstance(data, bytes):
        raise FrameError(
            "FormationViolation",
            "binary WebSocket frames are not OCPP-J; send text frames",
            message_id=UNKNOWN_ID,
            reply=True,
        )
    try:
        msg = json.loads(data)
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
            "ProtocolError", f"unknown message type {kind!r}", message_id=UNKNOWN_ID, reply=False
        )
    message_id = msg[1] if len(msg) > 1 else None
    if not isinstance(message_id, str) or not message_id or len(message_id) > MAX_MESSAGE_ID_LENGTH:
        raise FrameError(
            "ProtocolError",
            "message id must be a non-empty string of at most 36 characters",
            message_id=UNKNOWN_ID,
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
