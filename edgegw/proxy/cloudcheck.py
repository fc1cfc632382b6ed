"""Check, step by step, that the gateway can reach the cloud CSMS as a given charger.

When a charger's cloud link does not come up, the installer on site needs to know *which*
layer fails: the name does not resolve, a firewall drops the port, the CSMS certificate is
expired or signed by a private CA, or the CSMS refuses the charger's identity or password.
:func:`check_cloud` walks these layers in order — DNS, TCP, TLS, then the OCPP WebSocket
handshake (subprotocol ``ocpp1.6``, or ``ocpp2.0.1`` when asked; Basic auth exactly as
:mod:`edgegw.proxy.upstream` sends it) — times each step, and turns every failure into a
sentence that names the likely cause and the next thing to try. A step that cannot run
because an earlier one failed is reported as skipped, so the report always has the same shape.

The handshake opens a real connection as the charger and closes it at once without sending
any OCPP message. A CSMS that allows one connection per identity may drop that charger's live
link meanwhile; the gateway reconnects it by itself.

The steps are in :mod:`~edgegw.proxy.cloudcheck_net` (DNS, TCP),
:mod:`~edgegw.proxy.cloudcheck_tls` and :mod:`~edgegw.proxy.cloudcheck_ocpp`, the report in
:mod:`~edgegw.proxy.cloudcheck_steps`; every name is importable from here.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Mapping, Sequence

from edgegw.config import CloudConfig
from edgegw.proxy.cloudcheck_net import _dns, _tcp
from edgegw.proxy.cloudcheck_ocpp import (
    OCPP16,
    OCPP201,
    VERSIONS,
    BootFacts,
    _ocpp,
    boot_payload,
    handshake_title,
)
from edgegw.proxy.cloudcheck_steps import (
    CheckStep,
    CloudCheck,
    Identity,
    StepStatus,
    _setup_failure,
    _skipped,
    _target,
)
from edgegw.proxy.cloudcheck_tls import CERT_WARN_DAYS, TlsContextFactory, _ssl_context, _tls


async def check_cloud(
    cloud: CloudConfig,
    identities: Sequence[Identity],
    *,
    timeout: float | None = None,
    warn_days: int = CERT_WARN_DAYS,
    clock: Callable[[], float] = time.time,
    on_step: Callable[[CheckStep], None] | None = None,
    tls_context: TlsContextFactory | None = None,
    version: str = OCPP16,
    boots: Mapping[str, BootFacts] | None = None,
) -> CloudCheck:
    """Check DNS, TCP, TLS (wss only) and the OCPP handshake of every identity, in order.

    ``timeout`` bounds each step (default: the cloud's ``connect_timeout``); ``on_step`` is
    called as each step finishes, so a CLI can print progress. ``tls_context`` builds the
    client context per charger (default: verify with ``ca_file`` or the system CAs); pass the
    gateway's own to include client certificates. ``version`` is the subprotocol offered
    (``ocpp1.6`` or ``ocpp2.0.1``); with ``boots``, a charger found there also sends one
    BootNotification in that version's form, with what it last said of itself, and the step
    says whether the CSMS registers it. Never raises for a network failure: every failure is a
    step with status ``fail``.
    """
    limit = timeout if timeout is not None else cloud.connect_timeout
    target = _target(cloud.url)
    steps: list[CheckStep] = []
    factory = tls_context or (lambda _charger: _ssl_context(cloud))

    def context_for(charger_id: str | None) -> ssl.SSLContext | str | None:
        """The context, or why it cannot be built (a CA or key file that does not load)."""
        if target.scheme != "wss":
            return None
        try:
            return factory(charger_id)
        except (OSError, ssl.SSLError, ValueError, RuntimeError) as exc:
            return str(exc)

    def add(step: CheckStep) -> CheckStep:
        steps.append(step)
        if on_step is not None:
            on_step(step)
        return step

    blocked: str | None = None
    dns, addresses = await _dns(target, limit)
    add(dns)
    if dns.failed:
        blocked = "dns"
    tcp_title = f"TCP connection to {target.host} port {target.port}"
    if blocked:
        add(_skipped("tcp", tcp_title, blocked))
    else:
        tcp = add(await _tcp(target, addresses, limit))
        if tcp.failed:
            blocked = "tcp"
        else:
            addresses = [str(tcp.facts["address"])]
    tls_title = f"TLS certificate of {target.host}"
    if target.scheme != "wss":
        add(
            CheckStep(
                "tls",
                tls_title,
                StepStatus.SKIP,
                "ws:// url: no TLS, the charger passwords travel in clear text (fine on a VPN, "
                "use wss:// across the internet)",
            )
        )
    elif blocked:
        add(_skipped("tls", tls_title, blocked))
    else:
        context = context_for(None)
        if isinstance(context, ssl.SSLContext):
            tls = await _tls(
                target, addresses[0], context, timeout=limit, now=clock(), warn_days=warn_days
            )
        else:
            tls = _setup_failure("tls", tls_title, str(context))
        add(tls)
        if tls.failed:
            blocked = "tls"
    for identity in identities:
        title = handshake_title(version, identity.charger_id)
        if blocked:
            add(_skipped(f"ocpp:{identity.charger_id}", title, blocked))
        else:
            context = context_for(identity.charger_id)
            if isinstance(context, str):
                add(_setup_failure(f"ocpp:{identity.charger_id}", title, context))
            else:
                boot = None if boots is None else boots.get(identity.charger_id)
                add(await _ocpp(cloud.url, identity, context, limit, version=version, boot=boot))
    return CloudCheck(cloud.url, tuple(steps))


__all__ = [
    "CERT_WARN_DAYS",
    "OCPP16",
    "OCPP201",
    "VERSIONS",
    "BootFacts",
    "CheckStep",
    "CloudCheck",
    "Identity",
    "StepStatus",
    "TlsContextFactory",
    "boot_payload",
    "check_cloud",
]
