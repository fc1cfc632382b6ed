"""The bookkeeping behind the limits, on a fake clock."""

from __future__ import annotations

import ipaddress
import logging

import pytest

from edgegw.security.admission import ConnectionGuard, Refused, address_key
from edgegw.security.quiet_log import QuietLog
from edgegw.security.throttle import LoginThrottle, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_paces_above_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(10, 3, clock=clock)
    assert [bucket.take() for _ in range(3)] == [0, 0, 0]  # the burst is free
    assert bucket.take() == pytest.approx(0.1)
    assert bucket.take() == pytest.approx(0.2)  # the debt grows while it keeps sending
    clock.now += 0.5  # it pays off 5 tokens
    assert bucket.take() == 0
    clock.now += 100
    assert [bucket.take() for _ in range(3)] == [0, 0, 0]  # never more than the burst saved
    assert bucket.take() > 0


def test_login_throttle_backs_off_exponentially_and_forgets() -> None:
    clock = Clock()
    throttle = LoginThrottle(free_failures=2, base_delay=1, max_delay=8, clock=clock)
    assert throttle.failed("id:CP1") == 0
    assert throttle.failed("id:CP1") == 0
    assert throttle.retry_after("id:CP1") == 0
    assert [throttle.failed("id:CP1") for _ in range(5)] == [1, 2, 4, 8, 8]
    assert throttle.retry_after("id:CP1") == 8
    assert throttle.retry_after("id:CP2") == 0  # per key
    clock.now += 8
    assert throttle.retry_after("id:CP1") == 0
    assert throttle.failures("id:CP1") == 7
    clock.now += 9  # quiet for longer than max_delay: a fresh start
    assert throttle.failures("id:CP1") == 0
    throttle.failed("addr:10.0.0.1")
    throttle.succeeded("addr:10.0.0.1")
    assert throttle.failures("addr:10.0.0.1") == 0


def test_login_throttle_memory_is_bounded() -> None:
    throttle = LoginThrottle(free_failures=0, max_keys=100, clock=Clock())
    for i in range(1000):
        throttle.failed(f"addr:10.0.{i // 256}.{i % 256}")
    assert throttle.failures("addr:10.0.0.0") == 0  # the oldest were forgotten
    assert throttle.failures("addr:10.0.3.231") == 1


def test_address_keys() -> None:
    assert address_key("10.1.2.3") == "10.1.2.3"
    assert address_key("::ffff:10.1.2.3") == "10.1.2.3"
    assert address_key("2001:db8:1:2::5") == address_key("2001:db8:1:2:ffff::1")
    assert address_key("2001:db8:1:2::5") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::5") != address_key("2001:db8:1:2::5")


def test_guard_allow_list_per_address_and_pending() -> None:
    guard = ConnectionGuard(
        allowed_networks=[ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")],
        max_per_address=2,
        max_pending=3,
    )
    with pytest.raises(Refused) as info:
        guard.admit("192.168.1.5")
    assert info.value.limit == "allowed_networks"
    assert guard.allowed("::ffff:10.9.9.9") and guard.allowed("fd00::1")
    a1, a2 = guard.admit("10.0.0.1"), guard.admit("10.0.0.1")
    with pytest.raises(Refused) as info:
        guard.admit("10.0.0.1")
    assert info.value.limit == "max_connections_per_address"
    b = guard.admit("10.0.0.2")
    with pytest.raises(Refused) as info:
        guard.admit("10.0.0.3")
    assert info.value.limit == "max_pending_handshakes"
    a1.opened()  # a WebSocket is open: the pending slot is free again, the address slot not
    assert guard.pending == 2
    c = guard.admit("10.0.0.3")
    with pytest.raises(Refused):
        guard.admit("10.0.0.1")
    a1.close()
    a1.close()  # idempotent
    assert guard.connections_from("10.0.0.1") == 1
    aborted: list[str] = []
    for ticket in (a2, b, c):
        ticket.abort = lambda t=ticket: aborted.append(t.host)
    guard.abort_pending()
    assert sorted(aborted) == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert guard.pending == 0 and guard.connections_from("10.0.0.1") == 0


def test_quiet_log_counts_what_it_left_out(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    quiet = QuietLog(logging.getLogger("test.quiet"), interval=60, clock=clock)
    with caplog.at_level(logging.WARNING, logger="test.quiet"):
        assert quiet.warning("k", "refused %s", "a")
        assert not quiet.warning("k", "refused %s", "b")
        assert not quiet.warning("k", "refused %s", "c")
        assert quiet.warning("other", "refused %s", "x")
        clock.now += 60
        assert quiet.warning("k", "refused %s", "d")
    assert [r.getMessage() for r in caplog.records] == [
        "refused a",
        "refused x",
        "refused d (2 more like this in the last 60 s)",
    ]
