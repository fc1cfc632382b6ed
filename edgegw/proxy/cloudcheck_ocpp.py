"""The last step of a cloud check: the OCPP WebSocket handshake as the charger (subprotocol
``ocpp1.6`` or ``ocpp2.0.1``, Basic auth as :mod:`edgegw.proxy.upstream` sends it), closed at
once; or, when asked, after one BootNotification in that version's form (:func:`boot_payload`)
whose answer says whether the CSMS registers the charger (Accepted, Pending, Rejected).
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from edgegw.proxy.cloudcheck_steps import CheckStep, Identity, StepStatus, _Stopwatch

OCPP16: Final = Subprotocol("ocpp1.6")
OCPP201: Final = Subprotocol("ocpp2.0.1")
VERSIONS: Final = {"1.6": OCPP16, "2.0.1": OCPP201}
"""What ``--ocpp`` takes, and the subprotocol each one offers."""
BOOT_ID: Final = "edgegw-cloudcheck-boot"


@dataclass(frozen=True, slots=True)
class BootFacts:
    """What the charger last said of itself in its BootNotification (the gateway's store): the
    only thing a check may send as that charger without putting words in its mouth."""

    vendor: str
    model: str
    serial: str | None = None
    firmware: str | None = None


def boot_payload(version: str, facts: BootFacts) -> dict[str, Any]:
    """A BootNotification of the charger in ``version``'s form (OCPP 1.6: ``chargePoint*``
    fields; 2.0.1: ``reason`` and ``chargingStation``)."""
    if version == OCPP201:
        station: dict[str, Any] = {"vendorName": facts.vendor[:50], "model": facts.model[:20]}
        if facts.serial:
            station["serialNumber"] = facts.serial[:25]
        if facts.firmware:
            station["firmwareVersion"] = facts.firmware[:50]
        return {"reason": "PowerUp", "chargingStation": station}
    payload: dict[str, Any] = {
        "chargePointVendor": facts.vendor[:20],
        "chargePointModel": facts.model[:20],
    }
    if facts.serial:
        payload["chargePointSerialNumber"] = facts.serial[:25]
    if facts.firmware:
        payload["firmwareVersion"] = facts.firmware[:50]
    return payload


def boot_answer(text: str | bytes) -> tuple[str | None, str]:
    """The registration status of a BootNotification answer frame, and the frame in words."""
    try:
        frame = json.loads(text)
    except ValueError:
        return None, "an answer that is not JSON"
    if isinstance(frame, list) and len(frame) >= 3 and frame[0] == 3 and frame[1] == BOOT_ID:
        payload = frame[2]
        status = payload.get("status") if isinstance(payload, Mapping) else None
        return (status, f"status {status}") if isinstance(status, str) else (None, "no status")
    if isinstance(frame, list) and len(frame) >= 4 and frame[0] == 4:
        return None, f"CALLERROR {frame[2]}: {frame[3]}"
    return None, "an unexpected frame"


def _status_failure(status: int, identity: Identity, url: str) -> tuple[str, str]:
    cid = identity.charger_id
    if status == 401:
        if identity.password is None:
            return (
                f"HTTP 401: the cloud wants a password for {cid} and none is configured",
                f"set cloud_password for charger {cid} in the configuration (the operator "
                "gives it to you)",
            )
        return (
            f"HTTP 401: the cloud refused the password for {cid} (user {identity.username!r})",
            f"check cloud_password (and cloud_username) of {cid} with the operator",
        )
    if status == 403:
        return (
            f"HTTP 403: the cloud forbids {cid}",
            f"ask the operator whether {cid} is enabled and allowed to connect from this site",
        )
    if status == 404:
        return (
            f"HTTP 404: the cloud does not know the identity {cid} at {url}",
            f"ask the operator to register {cid}, or check the path in [cloud] url",
        )
    if status >= 500:
        return (
            f"HTTP {status}: the CSMS has a problem of its own",
            "try again later, or tell the operator",
        )
    return (
        f"HTTP {status}: the cloud refused the WebSocket upgrade",
        "check the path in [cloud] url with the operator",
    )


async def _boot_step(
    ws: ClientConnection,
    *,
    name: str,
    title: str,
    version: str,
    boot: BootFacts,
    timeout: float,
    facts: dict[str, Any],
    seconds: float,
) -> CheckStep:
    """After the handshake: one BootNotification, its answer read into the step."""
    charger = facts["charger"]
    words = version.removeprefix("ocpp")
    try:
        frame = json.dumps([2, BOOT_ID, "BootNotification", boot_payload(version, boot)])
        await ws.send(frame)
        async with asyncio.timeout(timeout):
            status, said = boot_answer(await ws.recv())
        await ws.close(1000, "edgegw cloud check")
    except TimeoutError:
        said, status = f"no answer within {timeout:g} s", None
    except ConnectionClosed as exc:
        said, status = f"the connection closed ({exc.rcvd.code if exc.rcvd else 'no code'})", None
    facts["boot_status"] = status
    if status == "Accepted":
        return CheckStep(
            name,
            title,
            StepStatus.PASS,
            f"accepted: WebSocket upgraded to {version} at {facts['url']}, BootNotification "
            "Accepted",
            seconds,
            facts=facts,
        )
    return CheckStep(
        name,
        title,
        StepStatus.WARN if status == "Pending" else StepStatus.FAIL,
        f"connected over {version}, but the BootNotification got {said}",
        seconds,
        f"ask the operator to register {charger} as an OCPP {words} station",
        facts,
    )


def handshake_title(version: str, charger_id: str) -> str:
    return f"OCPP {version.removeprefix('ocpp')} handshake as {charger_id}"


async def _ocpp(
    base_url: str,
    identity: Identity,
    context: ssl.SSLContext | None,
    timeout: float,
    *,
    version: str = OCPP16,
    boot: BootFacts | None = None,
) -> CheckStep:
    url = f"{base_url}/{identity.charger_id}"
    auth = f"Basic auth as {identity.username!r}" if identity.password else "no password"
    title = f"{handshake_title(version, identity.charger_id)} ({auth})"
    name = f"ocpp:{identity.charger_id}"
    facts: dict[str, Any] = {"url": url, "charger": identity.charger_id}
    kwargs: dict[str, Any] = {}
    if context is not None:
        kwargs["ssl"] = context
    watch = _Stopwatch()
    try:
        async with connect(
            url,
            subprotocols=[Subprotocol(version)],
            additional_headers=identity.headers(),
            proxy=None,
            compression=None,
            open_timeout=timeout,
            close_timeout=2,
            ping_interval=None,
            **kwargs,
        ) as ws:
            seconds = watch.seconds
            facts["subprotocol"] = ws.subprotocol
            if ws.subprotocol != version:
                await ws.close(1002, f"{version} required")
                words = version.removeprefix("ocpp")
                return CheckStep(
                    name,
                    title,
                    StepStatus.FAIL,
                    f"the WebSocket opened but the cloud did not agree to subprotocol {version}",
                    seconds,
                    f"this endpoint is not an OCPP {words} CSMS (another OCPP version?): check "
                    "the url with the operator",
                    facts,
                )
            if boot is not None:
                return await _boot_step(
                    ws,
                    name=name,
                    title=title,
                    version=version,
                    boot=boot,
                    timeout=timeout,
                    facts=facts,
                    seconds=seconds,
                )
            await ws.close(1000, "edgegw cloud check")
    except InvalidStatus as exc:
        status = exc.response.status_code
        facts["http_status"] = status
        detail, hint = _status_failure(status, identity, url)
        return CheckStep(name, title, StepStatus.FAIL, detail, watch.seconds, hint, facts)
    except TimeoutError:
        return CheckStep(
            name,
            title,
            StepStatus.FAIL,
            f"the WebSocket handshake did not finish within {timeout:g} s",
            watch.seconds,
            "the server accepts connections but does not answer the upgrade: check the url, or "
            "whether a proxy sits in between",
            facts,
        )
    except InvalidHandshake as exc:
        return CheckStep(
            name,
            title,
            StepStatus.FAIL,
            f"not a valid WebSocket handshake: {exc}",
            watch.seconds,
            "the server at this url does not speak WebSocket: check the url with the operator",
            facts,
        )
    except (OSError, ssl.SSLError) as exc:
        return CheckStep(
            name,
            title,
            StepStatus.FAIL,
            f"the connection failed during the handshake: {exc}",
            watch.seconds,
            "the earlier steps passed, so the CSMS dropped the connection: try again, then ask "
            "the operator",
            facts,
        )
    return CheckStep(
        name,
        title,
        StepStatus.PASS,
        f"accepted: WebSocket upgraded to {version} at {url}",
        seconds,
        facts=facts,
    )
