"""Fuzzing the charger side: whatever a charger sends, the gateway neither crashes nor stalls.

Each example goes to a real gateway (relaying to a SimCloud) on one connection, followed by a
probe Heartbeat; everything that comes back before the probe's answer must be a well-formed
answer, and the CALLERROR is the one OCPP-J asks for where one is due. Meanwhile another
charger, connected all along, must keep being served.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from itertools import count
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from edgegw.daemon import Gateway
from edgegw.proxy.schemas import CHARGER_ACTIONS, CSMS_ACTIONS
from edgegw.sim.cloud import SimCloud
from tests.conftest import GatewayFactory, RawCharger, gateway_url, raw_charger
from tests.security.conftest import BOOT

ERROR_CODES_16 = {
    "NotImplemented",
    "NotSupported",
    "InternalError",
    "ProtocolError",
    "SecurityError",
    "FormationViolation",
    "PropertyConstraintViolation",
    "OccurenceConstraintViolation",
    "TypeConstraintViolation",
    "GenericError",
}

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
message_ids = st.text(min_size=0, max_size=40) | json_scalars
actions = st.sampled_from([*sorted(CHARGER_ACTIONS | CSMS_ACTIONS), "", "Nope", "heartbeat"])
field_names = st.sampled_from(
    ["connectorId", "idTag", "meterStart", "timestamp", "transactionId", "status", "errorCode",
     "chargePointVendor", "chargePointModel", "vendorId", "data", "meterValue", "reason"]
)  # fmt: skip
payloads = st.dictionaries(field_names, json_values, max_size=5) | json_values
calls = st.builds(lambda i, a, p: [2, i, a, p], message_ids, actions, payloads)
answers = st.builds(lambda i, p: [3, i, p], message_ids, payloads) | st.builds(
    lambda i, c, d: [4, i, c, d, {}], message_ids, st.text(max_size=12), st.text(max_size=12)
)  # answers to calls the gateway never made
odd_shapes = st.lists(json_values, max_size=6).map(lambda x: x)
frames = (
    calls.map(json.dumps)
    | answers.map(json.dumps)
    | odd_shapes.map(json.dumps)
    | json_values.map(json.dumps)
    | st.text(max_size=60)
    | st.binary(max_size=60)
)


def _beyond_int64(value: object) -> bool:
    """An integer no 64-bit field can hold, anywhere in the frame."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return not -(2**63) <= value < 2**63
    if isinstance(value, list):
        return any(_beyond_int64(v) for v in value)
    if isinstance(value, dict):
        return any(_beyond_int64(v) for v in value.values())
    return False


def expected_error(frame: str | bytes) -> tuple[str, str] | None:
    """(message id, CALLERROR code) that OCPP-J 1.6 requires for ``frame``, if it is certain.

    None when no error is due (a valid frame, or one to drop silently) or when the code depends
    on the payload schema (checked separately: it must then be *some* 1.6 code).
    """
    if isinstance(frame, bytes):
        return ("-1", "FormationViolation")
    try:
        value = json.loads(frame)
    except ValueError:
        return ("-1", "FormationViolation")
    if not isinstance(value, list) or not value:
        return ("-1", "FormationViolation")
    if value[0] != 2 or isinstance(value[0], bool):
        return None  # answers and unknown types are dropped, never answered
    message_id = value[1] if len(value) > 1 else None
    if not isinstance(message_id, str) or not 1 <= len(message_id) <= 36:
        return ("-1", "ProtocolError")
    if _beyond_int64(value):  # refused while reading the frame, whatever its shape
        return (message_id, "TypeConstraintViolation")
    if len(value) != 4 or not isinstance(value[2], str) or not isinstance(value[3], dict):
        return (message_id, "ProtocolError")
    if value[2] not in CHARGER_ACTIONS | CSMS_ACTIONS:
        return (message_id, "NotImplemented")
    if value[2] in CSMS_ACTIONS - CHARGER_ACTIONS:
        return (message_id, "NotSupported")
    return None


@dataclass
class Rig:
    gateway: Gateway
    fuzzed: RawCharger
    bystander: RawCharger
    probes: count[int] = field(default_factory=count)


@pytest.fixture
async def rig(make_gateway: GatewayFactory) -> AsyncIterator[Rig]:
    async with SimCloud() as cloud:
        gateway = await make_gateway(
            cloud_url=cloud.url,
            server={"max_messages_per_second": 0},  # fuzzing, not flooding
            chargers=[{"id": "FUZZ"}, {"id": "BYSTANDER"}],
        )
        url = gateway_url(gateway)
        async with raw_charger(url, "BYSTANDER") as bystander:
            assert (await bystander.call("BootNotification", BOOT))[0] == 3
            async with raw_charger(url, "FUZZ") as fuzzed:
                yield Rig(gateway, fuzzed, bystander)


async def send_and_probe(cp: RawCharger, frame: str | bytes, probe_id: str) -> list[list[Any]]:
    """Send ``frame`` then a Heartbeat; return what came back before the Heartbeat's answer."""
    await cp.send(frame)
    await cp.send([2, probe_id, "Heartbeat", {}])
    before: list[list[Any]] = []
    while True:
        answer = await cp.recv(timeout=10)
        if answer[1] == probe_id:
            assert answer[0] == 3, answer
            return before
        before.append(answer)


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(frame=frames)
async def test_random_frames(rig: Rig, frame: str | bytes) -> None:
    probe = f"probe-{next(rig.probes)}"
    got = await send_and_probe(rig.fuzzed, frame, probe)
    for answer in got:
        assert answer[0] in (3, 4), answer
        if answer[0] == 4:
            assert len(answer) == 5 and answer[2] in ERROR_CODES_16, answer
            assert isinstance(answer[3], str) and isinstance(answer[4], dict)
    due = expected_error(frame)
    if due is not None:
        assert [(a[1], a[2]) for a in got if a[0] == 4] == [due], (frame, got)
    elif isinstance(frame, str) and (value := json.loads(frame)) and value[0] != 2:
        assert got == [], (frame, got)  # answers to nothing, unknown types: dropped
    else:  # a well-shaped CALL of a charger action: exactly one answer, with its id
        assert [a[1] for a in got] == [json.loads(frame)[1]], (frame, got)
    answer = await rig.bystander.call("Heartbeat", {})
    assert answer[0] == 3


async def test_reused_ids_and_crossed_answers(rig: Rig) -> None:
    cp = rig.fuzzed
    for _ in range(3):  # the same id again and again: every call is answered
        got = await send_and_probe(cp, json.dumps([2, "same", "Heartbeat", {}]), "p-reuse")
        assert [(a[0], a[1]) for a in got] == [(3, "same")]
    got = await send_and_probe(cp, json.dumps([3, "p-reuse", {}]), "p-after")
    assert got == []  # an answer to our own probe id, long answered: dropped


async def test_huge_and_deep_payloads(rig: Rig) -> None:
    cp = rig.fuzzed
    deep = "[" * 20000 + "]" * 20000  # beyond any recursion limit, below the size limit
    got = await send_and_probe(cp, deep, "p-deep")
    assert [(a[1], a[2]) for a in got] == [("-1", "FormationViolation")]
    nested: Any = "x"
    for _ in range(500):
        nested = {"k": nested}
    frame = json.dumps([2, "deep-call", "DataTransfer", {"vendorId": "v", "data": nested}])
    got = await send_and_probe(cp, frame, "p-deep2")
    assert [(a[1], a[2]) for a in got] == [("deep-call", "TypeConstraintViolation")]
    wide = json.dumps([2, "wide", "DataTransfer", {"vendorId": "v", "data": "y" * 60000}])
    got = await send_and_probe(cp, wide, "p-wide")
    assert [(a[0], a[1]) for a in got] == [(3, "wide")]  # large but allowed: relayed
    with pytest.raises(ConnectionClosed) as info:  # above server.max_message_size
        await send_and_probe(cp, "[" + " " * 70000 + "]", "p-huge")
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    assert (await rig.bystander.call("Heartbeat", {}))[0] == 3


async def test_invalid_utf8_closes_only_that_connection(rig: Rig) -> None:
    await rig.fuzzed.ws.send(b'[2,"u","Heartbeat",{"x":"\xff\xfe"}]', text=True)
    with pytest.raises(ConnectionClosed) as info:
        await rig.fuzzed.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 1007
    assert (await rig.bystander.call("Heartbeat", {}))[0] == 3
    async with raw_charger(gateway_url(rig.gateway), "FUZZ") as again:
        assert (await again.call("Heartbeat", {}))[0] == 3
