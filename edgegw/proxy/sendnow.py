"""Write a frame on a WebSocket connection at once, when it can take it without waiting.

``await connection.send(frame)`` (websockets' asyncio API) checks that the connection is open,
writes the frame to the transport and waits while the transport's write buffer is over its
high-water mark. When the connection is open, not closing, not in the middle of a fragmented
message and its buffer not full, nothing in it waits: :func:`send_now` does the same writing
without a coroutine, so the relay can send a frame from the task that received the frame it
answers, with no hand-off to another task and no extra event-loop iteration.

When it cannot (the buffer is full, the connection closing or closed), it writes nothing and
returns False: the caller awaits ``send`` instead, which waits or raises as it always did. A
frame that filled the buffer is written all the same (the transport holds it); the next
:func:`send_now` then returns False and the caller's ``send`` waits until the buffer drained,
so a slow reader still slows its sender down, one frame later than ``send`` alone would.
"""

from __future__ import annotations

from websockets.asyncio.connection import Connection
from websockets.protocol import OPEN


def send_now(connection: Connection, frame: str) -> bool:
    """Write ``frame`` (a text frame) at once; False: nothing written, await ``send``."""
    if (
        connection.protocol.state is not OPEN
        or connection.paused
        or connection.send_in_progress is not None
        or connection.transport.is_closing()
    ):
        return False
    connection.protocol.send_text(frame.encode())
    try:
        connection.send_data()
    except Exception as exc:  # as send does: the connection fails, its close follows
        connection.set_connection_exc(exc)
        connection.transport.abort()
    return True
