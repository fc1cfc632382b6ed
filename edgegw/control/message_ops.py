"""Control-socket operation on the troubleshooting message log: ``messages``.

The log lives in the daemon's memory (:mod:`edgegw.store.messagelog`); ``messages`` answers
its newest frames, newest first, as many as fit in one answer line, with a cursor
(``next_before``) to page further back. ``edgegw messages show`` and ``edgegw messages dump``
are built on it. Read-only, open to the ``edgegw`` group like ``events`` (passwords in frames
are masked when the frame is logged).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final

from edgegw.control.protocol import MAX_LINE, ControlError, ErrorCode, get_arg
from edgegw.control.server import ControlServer

if TYPE_CHECKING:
    from edgegw.store.messagelog import MessageLog

DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 10_000
_ANSWER_BUDGET: Final = MAX_LINE * 3 // 4
"""Bytes of frames one answer may carry; the rest of the line is the envelope."""


class MessageOps:
    """Registers ``messages`` on a :class:`ControlServer`."""

    def __init__(self, messages: MessageLog) -> None:
        self._messages = messages

    def register(self, server: ControlServer) -> None:
        server.register(
            "messages",
            self.messages,
            description=(
                "The message log's newest OCPP frames, newest first "
                "(args: charger, limit, before (a seq, to page back))."
            ),
        )

    async def messages(self, args: dict[str, Any]) -> dict[str, Any]:
        limit = get_arg(args, "limit", int, DEFAULT_LIMIT)
        if not 1 <= limit <= MAX_LIMIT:
            raise ControlError(ErrorCode.BAD_ARGS, f"limit must be between 1 and {MAX_LIMIT}")
        charger = get_arg(args, "charger", str, None)
        before = get_arg(args, "before", int, None)
        log = self._messages
        found = log.newest(charger_id=charger, limit=limit, before=before)
        items: list[dict[str, Any]] = []
        used = 0
        for frame in found:
            item = frame.to_json()
            size = len(json.dumps(item, separators=(",", ":"))) + 1
            if size > _ANSWER_BUDGET:  # one frame bigger than an answer: cut, and say so
                text = item["frame"]
                item["frame"] = f"{text[: _ANSWER_BUDGET // 8]}...[{len(text)} characters]"
                size = len(json.dumps(item, separators=(",", ":"))) + 1
            used += size
            if items and used > _ANSWER_BUDGET:
                break
            items.append(item)
        more = len(items) < len(found) or len(found) == limit
        return {
            "frames": items,
            "count": len(items),
            "next_before": items[-1]["seq"] if more and items else None,
            "kept": len(log),
            "size": log.size,
            "bytes": log.bytes,
            "max_bytes": log.max_bytes,
        }
