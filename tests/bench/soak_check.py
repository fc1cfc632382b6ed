"""The soak's verdict: what each charger recorded against what the cloud took, message by message.

:func:`tests.sync.record.check_cloud_has` compares a charger with one connector: it maps a
charger's transaction id to the cloud id of "the latest start". The soak's chargers run two
connectors, so sessions interleave and that mapping would blame the gateway for correct traffic.
Here every session is named by its StartTransaction payload (connector, card, meter, timestamp:
unique per charger), on both sides:

* the charger's side: the id the charger was given for a start (local or the cloud's) names it;
* the cloud's side: the id the cloud itself gave that start names it.

Every transaction message becomes ``[action, payload]`` with its ``transactionId`` replaced by
the session's name; the two records must then be equal. What is left over is reported: a
message the cloud never answered is *lost*, one it took that no charger sent is *invented*
(a changed payload or a wrong id mapping shows up as one lost and one invented), one it took
twice is a *duplicate*, and the order per charger must be the charger's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgegw.proxy.frames import make_call
from edgegw.proxy.link import is_transaction_message

JsonDict = dict[str, Any]


def is_tx(action: str, payload: JsonDict) -> bool:
    """StartTransaction, StopTransaction, and MeterValues of a transaction."""
    return is_transaction_message(make_call("", action, payload))


def session_name(start: JsonDict) -> str:
    """A StartTransaction payload as a session's name (the soak makes each one unique)."""
    return json.dumps(start, sort_keys=True, separators=(",", ":"))


def canonical(action: str, payload: JsonDict, sessions: dict[int, str]) -> str:
    """``[action, payload]`` with the transaction id replaced by the session it names."""
    if action != "StartTransaction" and isinstance(payload.get("transactionId"), int):
        tx = payload["transactionId"]
        payload = {**payload, "transactionId": sessions.get(tx, f"<unknown id {tx}>")}
    return json.dumps([action, payload], sort_keys=True, separators=(",", ":"))


@dataclass(slots=True)
class ChargerSide:
    """What one charger sent, made in its worker process and pickled to the parent.

    ``record`` is :func:`tests.sync.record.charger_record` of its frames (each transaction
    message once, in the order first sent); ``given`` maps every transaction id it was given
    to the StartTransaction it was given for; ``clashes`` lists ids given to two sessions.
    """

    charger_id: str
    record: list[tuple[str, JsonDict]]
    tx_frames: int
    given: dict[int, str]
    clashes: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CloudCall:
    """A CALL the cloud received; ``answered``: its answer left the cloud's socket.

    ``given_id`` is the transaction id the cloud gave a StartTransaction (every copy of a start
    gets an id of its own, all naming the same session).
    """

    action: str
    payload: JsonDict
    answered: bool
    connection: int
    at: float
    given_id: int | None = None


@dataclass(slots=True)
class Verdict:
    """One charger's comparison; every list holds canonical messages."""

    charger_id: str
    sessions: int
    expected: int
    cloud_sessions: int = 0  # StartTransactions the cloud took (copies included)
    lost: list[str] = field(default_factory=list)
    lost_unanswered: int = 0  # of ``lost``: the cloud got it, its answer never left
    invented: list[str] = field(default_factory=list)
    duplicates: int = 0  # copies beyond the first that the cloud received
    duplicates_after_answer: int = 0  # of those: an earlier copy had been answered
    out_of_order: str | None = None  # the first message taken before one sent earlier
    id_clashes: list[int] = field(default_factory=list)
    copies: list[tuple[str, float, float, bool]] = field(default_factory=list)
    """Every duplicate: (action, when the cloud got the first copy, this copy, first answered)."""

    @property
    def ok(self) -> bool:
        return not (self.lost or self.invented or self.out_of_order or self.id_clashes)


def check_charger(side: ChargerSide, calls: Sequence[CloudCall]) -> Verdict:
    """Compare one charger's record with every call the cloud received from it, in order."""
    expected = [canonical(a, p, side.given) for a, p in side.record]
    issued = {
        c.given_id: session_name(c.payload)
        for c in calls
        if c.action == "StartTransaction" and c.given_id is not None
    }
    tx_calls = [c for c in calls if is_tx(c.action, c.payload)]
    received = [(canonical(c.action, c.payload, issued), c.answered) for c in tx_calls]
    verdict = Verdict(
        side.charger_id,
        sessions=sum(1 for a, _ in side.record if a == "StartTransaction"),
        expected=len(expected),
        cloud_sessions=sum(1 for c in calls if c.action == "StartTransaction"),
        id_clashes=list(side.clashes),
    )
    answered = {key for key, ok in received if ok}
    wanted = set(expected)
    verdict.lost = [key for key in expected if key not in answered]
    got = {key for key, _ in received}
    verdict.lost_unanswered = sum(1 for key in verdict.lost if key in got)
    verdict.invented = list(dict.fromkeys(key for key, _ in received if key not in wanted))
    was_answered: dict[str, bool] = {}
    first_at: dict[str, float] = {}
    for (key, ok), call in zip(received, tx_calls, strict=True):
        if key in was_answered:
            verdict.duplicates += 1
            verdict.duplicates_after_answer += was_answered[key]
            verdict.copies.append((call.action, first_at[key], call.at, was_answered[key]))
        first_at.setdefault(key, call.at)
        was_answered[key] = was_answered.get(key, False) or ok
    taken = list(dict.fromkeys(key for key, ok in received if ok and key in wanted))
    should = [key for key in expected if key in answered]
    if taken != should:
        verdict.out_of_order = next(
            got_key for got_key, want in zip(taken, should, strict=True) if got_key != want
        )
    return verdict


def check_all(sides: Iterable[ChargerSide], calls: dict[str, list[CloudCall]]) -> list[Verdict]:
    """Every charger's verdict against the cloud's calls per charger id."""
    return [check_charger(side, calls.get(side.charger_id, [])) for side in sides]
