"""Compare what a charger recorded with what the cloud received: every session once, in order.

The charger's record is the transaction messages it sent and got answered (``SimCharger.sent``;
a charger resends what it got no answer for). The cloud must have received exactly those, in the
same order, with every payload unchanged except ``transactionId``, which must be the id the cloud
itself gave that session's StartTransaction. A call the cloud received but never answered (the
link dropped first) is one it failed to process, as OCPP counts it: the gateway sends it again,
like a charger would, and only the answered copy counts.
"""

from __future__ import annotations

import json
from typing import Any

from edgegw.proxy.frames import make_call
from edgegw.proxy.link import is_transaction_message
from edgegw.sim.cloud import SimCloud


def _is_tx(action: str, payload: dict[str, Any]) -> bool:
    return is_transaction_message(make_call("", action, payload))


def charger_record(sent: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """The transaction messages in ``sent`` (raw frames), once each, in order."""
    record: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()
    for raw in sent:
        frame = json.loads(raw)
        if frame[0] != 2 or not _is_tx(frame[2], frame[3]):
            continue
        key = json.dumps([frame[2], frame[3]], sort_keys=True)
        if key in seen:  # the charger sent it again after getting no answer
            continue
        seen.add(key)
        record.append((frame[2], frame[3]))
    return record


def check_cloud_has(cloud: SimCloud, charger_id: str, sent: list[str]) -> int:
    """Assert the cloud's record of ``charger_id`` matches; returns the number of sessions.

    The chargers in these tests use one connector, so a local id maps to the latest start.
    """
    expected = charger_record(sent)
    answers = {
        r.message_id: r.payload
        for r in cloud.records
        if r.charger_id == charger_id
        and r.direction == "out"
        and r.message_type == 3
        and r.message_id not in cloud.unsent
    }
    got = [
        r
        for r in cloud.records
        if r.charger_id == charger_id
        and r.direction == "in"
        and r.message_type == 2
        and r.action is not None
        and _is_tx(r.action, r.payload)
        and r.message_id in answers
    ]
    assert [r.action for r in got] == [a for a, _ in expected], (
        charger_id,
        [(r.action, r.payload.get("transactionId"), r.payload.get("timestamp")) for r in got],
        [(a, p.get("transactionId"), p.get("timestamp")) for a, p in expected],
    )
    ids: dict[int, int] = {}  # the charger's transaction id -> the cloud's
    cloud_id: int | None = None
    sessions = 0
    for (action, payload), record in zip(expected, got, strict=True):
        if action == "StartTransaction":
            assert record.payload == payload, (charger_id, "start changed on the way")
            cloud_id = answers[record.message_id]["transactionId"]
            sessions += 1
            continue
        local = payload["transactionId"]
        if local not in ids:
            assert cloud_id is not None
            ids[local] = cloud_id
        assert record.payload == {**payload, "transactionId": ids[local]}, (charger_id, action)
    assert len(set(ids.values())) == len(ids), "two sessions got the same cloud id"
    return sessions
