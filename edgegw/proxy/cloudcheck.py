"""Check, step by step, that the gateway can reach the cloud CSMS as a given charger.

When a charger's cloud link does not come up, the installer on site needs to know *which*
layer fails: the name does not resolve, a firewall drops the port, the CSMS certificate is
expired or signed by a private CA, or the CSMS refuses the charger's identity or password.
:func:`check_cloud` walks these layers in order — DNS, TCP, TLS, then the OCPP WebSocket
handshake (subprotocol ``ocpp1.6``, Basic auth exactly as :mod:`edgegw.proxy.upstream` sends
it) — times each step, and turns every failure into a sentence that names the likely cause and
the next thing to try. A step that cannot run because an earlier one failed is reported as
skipped, so the report always has the same shape.

The handshake opens a real connection as the charger and closes it at once without sending
any OCPP message. A CSMS that allows one connection per identity may drop that charger's live
link meanwhile; the gateway reconnects it by itself.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import socket
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final
from urllib.parse import urlsplit

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from edgegw.config import ChargerConfig, CloudConfig
from edgegw.security import certs

__all__ = [
    "CheckStep",
    "CloudCheck",
    "Identity",
    "StepStatus",
    "check_cloud",
]

OCPP16: Final = Subprotocol("ocpp1.6")
CERT_WARN_DAYS: Final = certs.CERT_WARN_DAYS
"""A certificate expiring within this many days passes with a warning (as the gateway's own)."""

# OpenSSL X509_V_ERR_* codes that point the installer at different fixes.
_NOT_YET_VALID: Final = 9
_EXPIRED: Final = 10
_UNTRUSTED: Final = frozenset({2, 18, 19, 20, 21})
_HOSTNAME_MISMATCH: Final = 62


class StepStatus(StrEnum):
    PASS = "pass"  # noqa: S105 - a step status, not a password
    WARN = "warn"
    """Works, but needs attention soon (e.g. a certificate about to expire)."""
    FAIL = "fail"
    SKIP = "skip"
    """Not tried: not applicable (no TLS on ws://) or an earlier step failed."""


@dataclass(frozen=True, slots=True)
class CheckStep:
    """One step of the check: what was tried, how it went, how long it took, what to do."""

    name: str
    """``dns``, ``tcp``, ``tls`` or ``ocpp:<charger id>``."""
    title: str
    status: StepStatus
    detail: str
    seconds: float | None = None
    hint: str = ""
    facts: Mapping[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status is StepStatus.FAIL

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status.value,
            "seconds": None if self.seconds is None else round(self.seconds, 4),
            "detail": self.detail,
            "hint": self.hint,
            "facts": dict(self.facts),
        }


@dataclass(frozen=True, slots=True)
class CloudCheck:
    """The whole report: the base URL checked and every step in order."""

    url: str
    steps: tuple[CheckStep, ...]

    @property
    def ok(self) -> bool:
        """No step failed (warnings and skipped-as-not-applicable steps are fine)."""
        return not any(step.failed for step in self.steps) and not any(
            step.status is StepStatus.SKIP and step.facts.get("blocked_by") for step in self.steps
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "url": self.url,
            "steps": [step.as_dict() for step in self.steps],
        }


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the handshake claims to be: the charger id and its cloud Basic-auth credentials."""

    charger_id: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_config(cls, charger: ChargerConfig) -> Identity:
        password = charger.cloud_password
        return cls(
            charger.id,
            charger.cloud_username or charger.id,
            None if password is None else password.get_secret_value(),
        )

    def headers(self) -> dict[str, str]:
        """The ``Authorization`` header the gateway sends for this charger (if any)."""
        if self.password is None:
            return {}
        user = self.username or self.charger_id
        token = base64.b64encode(f"{user}:{self.password}".encode()).decode("ascii")
        return {"Authorization": f"Basic {token}"}


@dataclass(frozen=True, slots=True)
class _Target:
    scheme: str
    host: str
    port: int


def _target(url: str) -> _Target:
    parts = urlsplit(url)
    host = parts.hostname or ""
    default = 443 if parts.scheme == "wss" else 80
    return _Target(parts.scheme, host, parts.port or default)


def _is_ip(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        return False
    return True


TlsContextFactory = Callable[[str | None], ssl.SSLContext]
"""Builds the client TLS context for a charger id (``None``: the gateway's own check)."""


def _ssl_context(cloud: CloudConfig) -> ssl.SSLContext:
    """The verification the gateway's upstream uses by default (system CAs or ``ca_file``)."""
    context = ssl.create_default_context(
        cafile=str(cloud.ca_file) if cloud.ca_file is not None else None
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class _Stopwatch:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started


# --------------------------------------------------------------------------------------------
# The steps
# --------------------------------------------------------------------------------------------


async def _dns(target: _Target, timeout: float) -> tuple[CheckStep, list[str]]:
    title = f"DNS lookup of {target.host}"
    if _is_ip(target.host):
        step = CheckStep("dns", title, StepStatus.PASS, "an IP address: no lookup needed", 0.0)
        return step, [target.host]
    watch = _Stopwatch()
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except TimeoutError:
        return CheckStep(
            "dns",
            title,
            StepStatus.FAIL,
            f"no answer from the DNS server within {timeout:g} s",
            watch.seconds,
            "check the gateway's DNS servers (/etc/resolv.conf, resolvectl status) and its "
            "internet link",
        ), []
    except socket.gaierror as exc:
        if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
            detail = f"the name {target.host!r} does not exist ({exc.strerror})"
            hint = (
                "check the host name in [cloud] url against what the operator gave you; if it "
                "is right, check the gateway's DNS servers (resolvectl status, /etc/resolv.conf)"
            )
        else:
            detail = f"lookup failed: {exc.strerror}"
            hint = (
                "the DNS server could not be asked: check the gateway's network link, "
                "its DNS servers (/etc/resolv.conf) and that the site allows DNS (port 53)"
            )
        return CheckStep("dns", title, StepStatus.FAIL, detail, watch.seconds, hint), []
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    return CheckStep(
        "dns",
        title,
        StepStatus.PASS,
        f"resolved to {', '.join(addresses)}",
        watch.seconds,
        facts={"addresses": addresses},
    ), addresses


def _tcp_failure(exc: OSError, target: _Target) -> tuple[str, str]:
    where = f"port {target.port} of {target.host}"
    if isinstance(exc, ConnectionRefusedError):
        return (
            f"connection refused: nothing listens on {where}",
            "check the port in [cloud] url; if it is right, the CSMS is down or the operator "
            "moved it",
        )
    if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return (
            f"no route to {target.host} ({exc.strerror})",
            "check the gateway's network cable or Wi-Fi, its address and default route (ip route)",
        )
    return (
        f"cannot connect to {where}: {exc.strerror or exc}",
        "check the gateway's network link and the site's firewall",
    )


async def _tcp(target: _Target, addresses: Sequence[str], timeout: float) -> CheckStep:
    title = f"TCP connection to {target.host} port {target.port}"
    watch = _Stopwatch()
    failures: list[str] = []
    last: tuple[str, str] | None = None
    for address in addresses:
        try:
            async with asyncio.timeout(timeout):
                _, writer = await asyncio.open_connection(address, target.port)
        except TimeoutError:
            failures.append(f"{address}: no answer within {timeout:g} s")
            last = (
                f"no answer from port {target.port} of {target.host} within {timeout:g} s",
                f"a firewall is probably dropping the connection: ask the site's IT to allow "
                f"outgoing TCP to {target.host} port {target.port}",
            )
            continue
        except OSError as exc:
            failures.append(f"{address}: {exc.strerror or exc}")
            last = _tcp_failure(exc, target)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return CheckStep(
            "tcp",
            title,
            StepStatus.PASS,
            f"connected to {address}",
            watch.seconds,
            facts={"address": address, "failed": failures},
        )
    assert last is not None
    detail, hint = last
    return CheckStep(
        "tcp", title, StepStatus.FAIL, detail, watch.seconds, hint, {"failed": failures}
    )


def _name(parts: Any, key: str) -> str | None:
    """One attribute (e.g. ``commonName``) from ``getpeercert()``'s subject/issuer tuples."""
    for rdn in parts or ():
        for name, value in rdn:
            if name == key:
                return str(value)
    return None


def _verified_facts(cert: Mapping[str, Any], now: float) -> dict[str, Any]:
    not_after = ssl.cert_time_to_seconds(str(cert["notAfter"]))
    issuer = _name(cert.get("issuer"), "organizationName") or _name(
        cert.get("issuer"), "commonName"
    )
    return {
        "subject": _name(cert.get("subject"), "commonName"),
        "names": [str(value) for _, value in cert.get("subjectAltName", ())],
        "issuer": issuer,
        "not_after": datetime.fromtimestamp(not_after, UTC).isoformat(),
        "days_left": int((not_after - now) // 86400),
    }


def _unverified_facts(der: bytes, now: float) -> dict[str, Any]:
    """What an unverified certificate says, if ``cryptography`` is there to read it."""
    try:
        from cryptography import x509  # noqa: PLC0415 - optional, only for failed checks
        from cryptography.x509.oid import NameOID  # noqa: PLC0415
    except ImportError:
        return {}
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return {}

    def first(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
        values = name.get_attributes_for_oid(oid)
        return str(values[0].value) if values else None

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n.value) for n in san]
    except x509.ExtensionNotFound:
        names = []
    not_after = cert.not_valid_after_utc
    return {
        "subject": first(cert.subject, NameOID.COMMON_NAME),
        "names": names,
        "issuer": first(cert.issuer, NameOID.ORGANIZATION_NAME)
        or first(cert.issuer, NameOID.COMMON_NAME),
        "not_after": not_after.isoformat(),
        "days_left": int((not_after.timestamp() - now) // 86400),
        "self_signed": cert.issuer == cert.subject,
    }


async def _peer_der(target: _Target, address: str, timeout: float) -> bytes | None:
    """The server's certificate without verifying it, to explain why verification failed."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(
                address, target.port, ssl=context, server_hostname=target.host
            )
    except (OSError, TimeoutError):
        return None
    ssl_object = writer.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return der if isinstance(der, bytes) else None


def _verify_failure(
    exc: ssl.SSLCertVerificationError, target: _Target, facts: Mapping[str, Any]
) -> tuple[str, str]:
    message = exc.verify_message or exc.reason or str(exc)
    code = exc.verify_code
    if code == _EXPIRED:
        when = f" on {facts['not_after'][:10]}" if "not_after" in facts else ""
        return (
            f"the CSMS certificate expired{when}",
            "the operator must renew its certificate; if the date looks wrong, check the "
            "gateway's clock (timedatectl)",
        )
    if code == _NOT_YET_VALID:
        return (
            "the CSMS certificate is not valid yet",
            "the gateway's clock is probably wrong: check it with timedatectl (NTP)",
        )
    if code == _HOSTNAME_MISMATCH:
        names = ", ".join(facts.get("names", ())) or "other names"
        return (
            f"the certificate is for {names}, not for {target.host}",
            "use the host name the certificate was issued for in [cloud] url (ask the "
            "operator for the exact URL)",
        )
    if code in _UNTRUSTED:
        issuer = f" issued by {facts['issuer']!r}" if facts.get("issuer") else ""
        return (
            f"the certificate{issuer} is not trusted ({message})",
            "the CSMS uses a private or self-signed CA: get the operator's CA certificate and "
            "set [cloud] ca_file to it (or fix the CSMS certificate chain)",
        )
    return (f"certificate verification failed: {message}", "ask the operator about its certificate")


async def _tls(
    target: _Target,
    address: str,
    context: ssl.SSLContext,
    *,
    timeout: float,
    now: float,
    warn_days: int,
) -> CheckStep:
    title = f"TLS certificate of {target.host}"
    watch = _Stopwatch()
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(
                address, target.port, ssl=context, server_hostname=target.host
            )
    except ssl.SSLCertVerificationError as exc:
        seconds = watch.seconds
        der = await _peer_der(target, address, timeout)
        facts = _unverified_facts(der, now) if der else {}
        detail, hint = _verify_failure(exc, target, facts)
        return CheckStep("tls", title, StepStatus.FAIL, detail, seconds, hint, facts)
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        hint = "the CSMS may need an older TLS version than 1.2, or this port is not TLS"
        if reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"):
            hint = "this port does not speak TLS: use ws:// for it, or the CSMS's TLS port"
        return CheckStep(
            "tls", title, StepStatus.FAIL, f"TLS handshake failed ({reason})", watch.seconds, hint
        )
    except TimeoutError:
        return CheckStep(
            "tls",
            title,
            StepStatus.FAIL,
            f"the TLS handshake did not finish within {timeout:g} s",
            watch.seconds,
            "the port accepts connections but does not answer TLS: check ws:// vs wss:// and "
            "the port in [cloud] url",
        )
    except (ConnectionError, OSError) as exc:
        return CheckStep(
            "tls",
            title,
            StepStatus.FAIL,
            f"the server closed the connection during the TLS handshake "
            f"({exc.strerror or type(exc).__name__})",
            watch.seconds,
            "this port may not speak TLS (check ws:// vs wss:// and the port), or a firewall "
            "or proxy interferes",
        )
    seconds = watch.seconds
    ssl_object = writer.get_extra_info("ssl_object")
    cert: Mapping[str, Any] = ssl_object.getpeercert() if ssl_object is not None else {}
    facts = _verified_facts(cert, now)
    facts["tls_version"] = ssl_object.version() if ssl_object is not None else None
    facts["hostname_matches"] = True
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    days = int(facts["days_left"])
    detail = (
        f"trusted, valid for {target.host}, issued by {facts['issuer']!r}, expires "
        f"{facts['not_after'][:10]} ({days} days left), {facts['tls_version']}"
    )
    if days < warn_days:
        return CheckStep(
            "tls",
            title,
            StepStatus.WARN,
            detail,
            seconds,
            f"the certificate expires in {days} days: remind the operator to renew it",
            facts,
        )
    return CheckStep("tls", title, StepStatus.PASS, detail, seconds, facts=facts)


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


def _skipped(name: str, title: str, blocked_by: str) -> CheckStep:
    return CheckStep(
        name,
        title,
        StepStatus.SKIP,
        f"not tried: the {blocked_by.upper()} step failed",
        facts={"blocked_by": blocked_by},
    )


async def check_cloud(
    cloud: CloudConfig,
    identities: Sequence[Identity],
    *,
    timeout: float | None = None,
    warn_days: int = CERT_WARN_DAYS,
    clock: Callable[[], float] = time.time,
    on_step: Callable[[CheckStep], None] | None = None,
    tls_context: TlsContextFactory | None = None,
) -> CloudCheck:
    """Check DNS, TCP, TLS (wss only) and the OCPP handshake of every identity, in order.

    ``timeout`` bounds each step (default: the cloud's ``connect_timeout``); ``on_step`` is
    called as each step finishes, so a CLI can print progress. ``tls_context`` builds the
    client context per charger (default: verify with ``ca_file`` or the system CAs); pass the
    gateway's own to include client certificates. Never raises for a network failure: every
    failure is a step with status ``fail``.
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
        if blocked:
            add(
                _skipped(
                    f"ocpp:{identity.charger_id}",
                    f"OCPP 1.6 handshake as {identity.charger_id}",
                    blocked,
                )
            )
        else:
            context = context_for(identity.charger_id)
            if isinstance(context, str):
                title = f"OCPP 1.6 handshake as {identity.charger_id}"
                add(_setup_failure(f"ocpp:{identity.charger_id}", title, context))
            else:
                add(await _ocpp(cloud.url, identity, context, limit))
    return CloudCheck(cloud.url, tuple(steps))


def _setup_failure(name: str, title: str, reason: str) -> CheckStep:
    return CheckStep(
        name,
        title,
        StepStatus.FAIL,
        f"cannot set up TLS: {reason}",
        0.0,
        "check [cloud] ca_file and the client certificate and key files (readable, PEM)",
    )
