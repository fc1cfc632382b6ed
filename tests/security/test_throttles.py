"""The bookkeeping behind the limits, on a fake clock."""

from __future__ import annotations

import ipaddress
import logging

import pytest

from edgegw.security.admission import (
    ConnectionGuard,
    Refused,
    Ticket,
    TrustedSources,
    address_key,
)
from edgegw.security.quiet_log import QuietFilter, QuietLog
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
    aborted: list[str] = []

    def admit(host: str) -> Ticket:
        ticket = guard.admit(host)
        ticket.abort = lambda: aborted.append(host)
        return ticket

    a1, a2 = admit("10.0.0.1"), admit("10.0.0.1")
    with pytest.raises(Refused) as info:
        admit("10.0.0.1")
    assert info.value.limit == "max_connections_per_address"
    b = admit("10.0.0.2")
    # The budget is full: a newcomer takes the oldest slot of the address holding the most.
    c = admit("10.0.0.3")
    assert aborted == ["10.0.0.1"] and a1.closed and guard.evicted == 1
    assert guard.pending == 3
    with pytest.raises(Refused) as info:  # every address holds one: nobody to take from
        admit("10.0.0.2")
    assert info.value.limit == "max_pending_handshakes"
    a2.opened()  # a WebSocket is open: the pending slot is free again, the address slot not
    assert guard.pending == 2
    d = admit("10.0.0.4")
    e = admit("10.0.0.1")  # full again: 10.0.0.2's is the oldest slot
    assert aborted == ["10.0.0.1", "10.0.0.2"] and b.closed
    with pytest.raises(Refused) as info:
        admit("10.0.0.1")
    assert info.value.limit == "max_connections_per_address"
    a2.close()
    a2.close()  # idempotent
    assert guard.connections_from("10.0.0.1") == 1
    aborted.clear()
    guard.abort_pending()
    assert sorted(aborted) == ["10.0.0.1", "10.0.0.3", "10.0.0.4"]
    assert guard.pending == 0 and guard.connections_from("10.0.0.1") == 0
    assert c.closed and d.closed and e.closed


def test_guard_pending_per_address_and_the_reserve_of_trusted_addresses() -> None:
    trusted = TrustedSources()
    guard = ConnectionGuard(
        max_per_address=100, max_pending=4, max_pending_per_address=2, trusted=trusted
    )
    tickets = [guard.admit("10.0.0.1"), guard.admit("10.0.0.1")]
    with pytest.raises(Refused) as info:
        guard.admit("10.0.0.1")
    assert info.value.limit == "max_pending_per_address"
    tickets += [guard.admit("10.0.0.2"), guard.admit("10.0.0.2")]
    with pytest.raises(Refused) as info:
        guard.admit("10.0.0.2")
    trusted.add("CP1", "10.0.0.9")
    assert trusted.trusted("10.0.0.9") and trusted.trusted_for("CP1", "10.0.0.9")
    assert not trusted.trusted_for("CP2", "10.0.0.9")
    # A charger's address has its own reserve: it takes nobody's slot.
    mine = guard.admit("10.0.0.9")
    assert mine.reserved and not any(t.closed for t in tickets) and guard.pending == 5
    mine.opened()
    # Each identity keeps its last two addresses.
    trusted.add("CP1", "10.0.0.10")
    trusted.add("CP1", "10.0.0.11")
    assert not trusted.trusted("10.0.0.9") and trusted.trusted("10.0.0.11")
    trusted.forget("CP1")
    assert not trusted.trusted("10.0.0.11") and not trusted.known("CP1")


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


def test_token_bucket_try_take_refuses_without_debt() -> None:
    clock = Clock()
    bucket = TokenBucket(1, 2, clock=clock)
    assert [bucket.try_take(), bucket.try_take()] == [0, 0]
    assert bucket.try_take() == pytest.approx(1.0)
    assert bucket.try_take() == pytest.approx(1.0)  # refused attempts do not deepen the debt
    clock.now += 1
    assert bucket.try_take() == 0


def test_login_attempt_counts_before_the_check() -> None:
    clock = Clock()
    throttle = LoginThrottle(free_failures=2, base_delay=1, max_delay=8, clock=clock)
    # Three checks start at once: each is a failure until it succeeds.
    assert [throttle.attempt("id:CP1") for _ in range(4)] == [0, 0, 0, 1]
    throttle.succeeded("id:CP1")
    assert throttle.attempt("id:CP1") == 0


def test_a_junk_flood_evicts_one_off_keys_before_backed_off_ones() -> None:
    clock = Clock()
    throttle = LoginThrottle(free_failures=1, max_keys=10, clock=clock)
    for _ in range(3):
        throttle.failed("addr:victim-guesser")
    assert throttle.retry_after("addr:victim-guesser") > 0
    for i in range(100):
        throttle.failed(f"addr:junk-{i}")
    assert throttle.retry_after("addr:victim-guesser") > 0
    assert throttle.failures("addr:junk-99") == 1


def test_quiet_filter_lets_each_template_through_once_a_minute() -> None:
    clock = Clock()
    quiet = QuietFilter(interval=60, clock=clock)

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("edgegw.websockets.server", logging.ERROR, "", 0, msg, (), None)

    assert quiet.filter(record("connection handler failed"))
    assert not quiet.filter(record("connection handler failed"))
    assert quiet.filter(record("keepalive ping failed"))
    clock.now += 60
    again = record("connection handler failed")
    assert quiet.filter(again)
    assert again.getMessage() == "connection handler failed (1 more like this in the last 60 s)"
