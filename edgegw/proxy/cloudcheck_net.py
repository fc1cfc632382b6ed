"""The first two steps of a cloud check: the name resolves (DNS) and the port answers (TCP),
each failure turned into its likely cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import Sequence

from edgegw.proxy.cloudcheck_steps import CheckStep, StepStatus, _is_ip, _Stopwatch, _Target


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
