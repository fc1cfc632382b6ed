"""The last step of a cloud check: the OCPP WebSocket handshake as the charger (subprotocol
``ocpp1.6``, Basic auth as :mod:`edgegw.proxy.upstream` sends it), closed at once.
"""

from __future__ import annotations

import ssl
from typing import Any, Final

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from edgegw.proxy.cloudcheck_steps import CheckStep, Identity, StepStatus, _Stopwatch

OCPP16: Final = Subprotocol("ocpp1.6")


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


async def _ocpp(
    base_url: str, identity: Identity, context: ssl.SSLContext | None, timeout: float
) -> CheckStep:
    url = f"{base_url}/{identity.charger_id}"
    auth = f"Basic auth as {identity.username!r}" if identity.password else "no password"
    title = f"OCPP 1.6 handshake as {identity.charger_id} ({auth})"
    name = f"ocpp:{identity.charger_id}"
    facts: dict[str, Any] = {"url": url, "charger": identity.charger_id}
    kwargs: dict[str, Any] = {}
    if context is not None:
        kwargs["ssl"] = context
    watch = _Stopwatch()
    try:
        async with connect(
            url,
            subprotocols=[OCPP16],
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
            if ws.subprotocol != OCPP16:
                await ws.close(1002, "ocpp1.6 required")
                return CheckStep(
                    name,
                    title,
                    StepStatus.FAIL,
                    "the WebSocket opened but the cloud did not agree to subprotocol ocpp1.6",
                    seconds,
                    "this endpoint is not an OCPP 1.6 CSMS (another OCPP version?): check the "
                    "url with the operator",
                    facts,
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
        f"accepted: WebSocket upgraded to ocpp1.6 at {url}",
        seconds,
        facts=facts,
    )
