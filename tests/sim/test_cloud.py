"""SimCloud against SimCharger over a real socket: handshake rules, answers, records."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from edgegw.sim import SimCallError
from edgegw.sim.charger import SimCharger
from edgegw.sim.cloud import CloudRecord, SimCloud


class FakeClock:
    """A clock tests move by hand, so energy and timestamps are exact."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def cloud() -> AsyncIterator[SimCloud]:
    async with SimCloud(accepted_tags={"AA11BB22"}, blocked_tags={"DEADBEEF"}) as sim:
        yield sim


def is_in(action: str, charger_id: str | None = None) -> Callable[[CloudRecord], bool]:
    def predicate(r: CloudRecord) -> bool:
        return (
            r.direction == "in"
            and r.message_type == 2
            and r.action == action
            and (charger_id is None or r.charger_id == charger_id)
        )

    return predicate


async def test_boot_and_heartbeat_are_answered_and_recorded_verbatim(cloud: SimCloud) -> None:
    cloud.heartbeat_interval = 42
    async with SimCharger("CP-1", cloud.url) as charger:
        await cloud.wait_connected("CP-1")
        boot = await charger.boot()
        beat = await charger.heartbeat()

    assert boot["status"] == "Accepted"
    assert boot["interval"] == 42
    assert charger.config["HeartbeatInterval"].value == "42"
    assert beat["currentTime"].endswith("Z")

    boot_in = cloud.find("BootNotification", direction="in")[0]
    assert boot_in.charger_id == "CP-1"
    assert boot_in.message_type == 2
    assert boot_in.payload["chargePointVendor"] == "edgegw-sim"
    assert boot_in.raw == charger.sent[0]  # byte for byte what the charger sent
    boot_out = cloud.find("BootNotification", direction="out")[0]
    assert boot_out.message_type == 3
    assert boot_out.message_id == boot_in.message_id
    assert json.loads(boot_out.raw)[2] == boot  # the charger got exactly what the cloud sent
    assert [r.action for r in cloud.records] == [
        "BootNotification",
        "BootNotification",
        "Heartbeat",
        "Heartbeat",
    ]


async def test_boot_status_pending_is_passed_on(cloud: SimCloud) -> None:
    cloud.boot_status = "Pending"
    async with SimCharger("CP-1", cloud.url) as charger:
        assert (await charger.boot())["status"] == "Pending"
    assert charger.boot_status == "Pending"


async def test_authorize_accepts_known_tags_case_insensitively_and_refuses_others(
    cloud: SimCloud,
) -> None:
    async with SimCharger("CP-1", cloud.url) as charger:
        assert (await charger.authorize("aa11bb22"))["idTagInfo"]["status"] == "Accepted"
        assert (await charger.authorize("0000")) == {"idTagInfo": {"status": "Invalid"}}
        assert (await charger.authorize("DEADBEEF"))["idTagInfo"]["status"] == "Blocked"
        cloud.accepted_tags.add("0000")  # the tag sets are live
        assert (await charger.authorize("0000"))["idTagInfo"]["status"] == "Accepted"
        cloud.blocked_tags.add("AA11BB22")  # blocked wins over accepted
        assert (await charger.authorize("AA11BB22"))["idTagInfo"]["status"] == "Blocked"


async def test_refused_tap_starts_nothing(cloud: SimCloud) -> None:
    async with SimCharger("CP-1", cloud.url) as charger:
        assert await charger.tap("0000", 1) is None
    assert cloud.find("StartTransaction") == []
    assert charger.session(1) is None


async def test_full_session_with_per_phase_meter_values(cloud: SimCloud) -> None:
    clock = FakeClock()
    async with SimCharger("CP-1", cloud.url, clock=clock, car_current_a=16.0) as charger:
        await charger.boot()
        tx = await charger.tap("AA11BB22", connector=2)
        assert tx == 1
        assert charger.status_of(2) == "Charging"
        clock.now += 1800  # half an hour at 16 A x 3 phases x 230 V = 5520 Wh
        await charger.meter_values(2)
        clock.now += 1800
        await charger.end_session(2)

    stored = cloud.transactions[("CP-1", 1)]
    assert stored.id_tag == "AA11BB22"
    assert stored.connector_id == 2
    assert stored.meter_start == 0
    assert stored.meter_stop == 11040
    assert stored.reason == "Local"
    assert stored.start_timestamp == "2023-11-14T22:13:20.000Z"
    assert stored.stop_timestamp == "2023-11-14T23:13:20.000Z"

    (sample,) = stored.meter_values
    values = {(v["measurand"], v.get("phase")): v for v in sample["sampledValue"]}
    assert values[("Energy.Active.Import.Register", None)]["value"] == "5520"
    assert values[("Energy.Active.Import.Register", None)]["unit"] == "Wh"
    assert values[("Power.Active.Import", None)]["value"] == "11040.0"
    for phase in ("L1", "L2", "L3"):
        assert values[("Current.Import", phase)]["value"] == "16.0"
        assert values[("Current.Import", phase)]["unit"] == "A"
    assert values[("Current.Offered", None)]["value"] == "32.0"

    meter_in = cloud.find("MeterValues", direction="in")[0]
    assert meter_in.raw in charger.sent
    assert json.loads(meter_in.raw)[3]["transactionId"] == 1
    statuses = [r.payload["status"] for r in cloud.find("StatusNotification", direction="in")]
    assert statuses == ["Preparing", "Charging", "Finishing", "Available"]


async def test_transaction_ids_are_numbered_per_charger(cloud: SimCloud) -> None:
    async with (
        SimCharger("CP-A", cloud.url) as a,
        SimCharger("CP-B", cloud.url) as b,
    ):
        assert await a.start_transaction(1, "AA11BB22") == 1
        assert await b.start_transaction(1, "AA11BB22") == 1
        assert await b.start_transaction(2, "AA11BB22") == 2
        await a.stop_transaction(1)
        assert await a.start_transaction(1, "AA11BB22") == 2
    assert set(cloud.transactions) == {("CP-A", 1), ("CP-A", 2), ("CP-B", 1), ("CP-B", 2)}
    assert cloud.transactions[("CP-A", 1)].stopped
    assert not cloud.transactions[("CP-B", 1)].stopped


class StartRefusingCloud(SimCloud):
    """Authorises the tag, then refuses it in StartTransaction (its list changed meanwhile)."""

    def respond(self, charger_id: str, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        answer = super().respond(charger_id, action, payload)
        if action == "StartTransaction":
            answer["idTagInfo"] = {"status": "Invalid"}
        return answer


async def test_a_tag_refused_by_start_transaction_is_deauthorized() -> None:
    async with (
        StartRefusingCloud(accepted_tags={"AA11BB22"}) as cloud,
        SimCharger("CP-1", cloud.url) as charger,
    ):
        assert await charger.tap("AA11BB22", 1) is None
        assert charger.session(1) is None
    stored = cloud.transactions[("CP-1", 1)]
    assert stored.reason == "DeAuthorized"
    statuses = [r.payload["status"] for r in cloud.find("StatusNotification", direction="in")]
    assert statuses == ["Preparing", "Finishing", "Available"]


async def test_wrong_password_gets_401_and_unknown_id_gets_404() -> None:
    async with SimCloud(passwords={"CP-1": "s3cret-s3cret-16"}) as cloud:
        with pytest.raises(InvalidStatus) as wrong:
            await SimCharger("CP-1", cloud.url, password="nope").connect()
        assert wrong.value.response.status_code == 401
        with pytest.raises(InvalidStatus) as missing:
            await SimCharger("CP-1", cloud.url).connect()
        assert missing.value.response.status_code == 401
        with pytest.raises(InvalidStatus) as unknown:
            await SimCharger("CP-X", cloud.url, password="s3cret-s3cret-16").connect()
        assert unknown.value.response.status_code == 404
        async with SimCharger("CP-1", cloud.url, password="s3cret-s3cret-16") as charger:
            assert (await charger.boot())["status"] == "Accepted"
        await cloud.wait_disconnected("CP-1")
        assert cloud.connected == set()


async def test_wrong_path_gets_404(cloud: SimCloud) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await SimCharger("CP-1", cloud.url.replace("/ocpp", "/other")).connect()
    assert refused.value.response.status_code == 404


async def test_a_client_without_ocpp16_is_closed_after_the_handshake(cloud: SimCloud) -> None:
    async with connect(f"{cloud.url}/CP-1", subprotocols=[Subprotocol("ocpp2.0.1")]) as ws:
        assert ws.subprotocol is None
        await ws.wait_closed()
    assert ws.close_code == 1002
    assert cloud.records == []


async def test_stop_and_start_keep_the_port_and_the_numbering() -> None:
    cloud = SimCloud(accepted_tags={"AA11BB22"})
    await cloud.start()
    try:
        port = cloud.port
        charger = SimCharger("CP-1", cloud.url)
        await charger.connect()
        assert await charger.start_transaction(1, "AA11BB22") == 1

        await cloud.stop()  # the cloud goes away: the charger sees 1001 going away
        assert await charger.wait_closed(timeout=5) == 1001
        assert not charger.connected
        await cloud.wait_disconnected("CP-1")
        with pytest.raises(OSError):
            await SimCharger("CP-2", cloud.url).connect()

        await cloud.start()  # ...and comes back on the same port
        assert cloud.port == port
        await charger.connect()
        await cloud.wait_connected("CP-1")
        await charger.stop_transaction(1)
        assert await charger.start_transaction(2, "AA11BB22") == 2
        await charger.close()
    finally:
        await cloud.stop()
    assert cloud.transactions[("CP-1", 1)].stopped


async def test_wait_for_sees_past_and_future_records(cloud: SimCloud) -> None:
    async with SimCharger("CP-1", cloud.url) as charger:
        await charger.heartbeat()
        past = await cloud.wait_for(is_in("Heartbeat"))
        assert past.charger_id == "CP-1"
        with pytest.raises(TimeoutError, match="matching sim cloud record"):
            await cloud.wait_for(is_in("Authorize"), timeout=0.05)
        await charger.authorize("AA11BB22")
        future = await cloud.wait_for(is_in("Authorize"))
        assert future.payload == {"idTag": "AA11BB22"}


async def test_error_actions_answer_callerror_and_delay_answers_times_out(
    cloud: SimCloud,
) -> None:
    async with SimCharger("CP-1", cloud.url) as charger:
        cloud.error_actions["StartTransaction"] = "InternalError"
        with pytest.raises(SimCallError) as refused:
            await charger.start_transaction(1, "AA11BB22")
        assert refused.value.code == "InternalError"
        assert charger.session(1) is None
        assert cloud.find("StartTransaction", direction="out", message_type=4)

        cloud.delay_answers = 0.5
        with pytest.raises(TimeoutError, match="Heartbeat"):
            await charger.call("Heartbeat", {}, timeout=0.05)


async def test_data_transfer_and_status_notifications(cloud: SimCloud) -> None:
    async with SimCharger("CP-1", cloud.url) as charger:
        answer = await charger.data_transfer("edgegw", data="hello", message_id="ping")
        assert answer == {"status": "Accepted", "data": "hello"}
        assert await charger.firmware_status("Installed") == {}
        assert await charger.diagnostics_status("Uploaded") == {}
        assert await charger.status(0, "Faulted", "GroundFailure") == {}
    fault = cloud.find("StatusNotification", direction="in")[0]
    assert fault.payload["errorCode"] == "GroundFailure"


async def test_call_to_an_unconnected_charger_raises(cloud: SimCloud) -> None:
    with pytest.raises(ConnectionError, match="CP-9"):
        await cloud.call("CP-9", "Reset", {"type": "Soft"})


async def test_a_second_connection_replaces_the_first(cloud: SimCloud) -> None:
    first = SimCharger("CP-1", cloud.url)
    second = SimCharger("CP-1", cloud.url)
    await first.connect()
    await second.connect()
    assert await first.wait_closed(timeout=5) == 1000
    assert (await second.heartbeat())["currentTime"]
    assert cloud.connected == {"CP-1"}
    await second.close()
    await first.close()


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A throwaway EC certificate for 127.0.0.1 and its key (made by the openssl command)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_tls_endpoint_with_basic_auth(self_signed: tuple[Path, Path]) -> None:
    """Security Profile 2: wss:// plus Basic auth."""
    cert, key = self_signed
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    passwords = {"CP-TLS": "0123456789abcdef"}
    async with SimCloud(passwords=passwords, ssl=server_ctx) as cloud:
        assert cloud.url.startswith("wss://127.0.0.1:")
        charger = SimCharger("CP-TLS", cloud.url, password="0123456789abcdef", ssl=client_ctx)
        async with charger:
            assert (await charger.boot())["status"] == "Accepted"
        with pytest.raises(ssl.SSLCertVerificationError):
            await SimCharger("CP-TLS", cloud.url, password="x").connect()  # system CAs only
