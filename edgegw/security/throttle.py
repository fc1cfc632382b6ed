"""Rate limits: the failed-login back-off and the per-connection message token bucket.

Both are pure bookkeeping on a monotonic clock (injected, so tests need no sleeping); the
server decides what to do when a limit is hit.
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; a message costs one token.

    :meth:`take` always takes the token and returns how long the caller must wait for it
    (0 when one was available): a sender above the rate is paced, not refused, and the debt
    tells how far behind it is.
    """

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def take(self) -> float:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def try_take(self) -> float:
        """Take a token if one is available and return 0; else take nothing and return the
        seconds until one will be (a refused attempt does not deepen the debt)."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self.rate


class Buckets:
    """One :class:`TokenBucket` per key (an identity), so that reconnecting starts no fresh
    allowance. At most ``max_keys`` are kept (the least recently used go first); a bucket that
    has refilled is as good as a new one, so forgetting it costs nothing."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        TokenBucket(rate, burst, clock=clock)  # validates the arguments
        self.rate = rate
        self.burst = burst
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def get(self, key: str) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, clock=self._clock)
            while len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket


@dataclass(slots=True)
class _Failures:
    count: int
    last: float
    blocked_until: float


class LoginThrottle:
    """Exponential back-off after repeated failed logins, per key (an identity or an address).

    The first ``free_failures`` failures cost nothing (a charger with a mistyped password
    retries); each further one doubles the wait, from ``base_delay`` up to ``max_delay``.
    A key with no failure for ``max_delay`` seconds starts afresh, and at most ``max_keys``
    keys are remembered, so many attacking addresses cannot exhaust memory: when full, the
    oldest key that is not in back-off goes first (a flood of one-off junk requests does not
    wipe out the back-off of the sources that earned one), else the oldest.

    :meth:`attempt` checks and records in one step: a password check that is about to run
    counts as a failure until :meth:`succeeded` says otherwise, so concurrent guesses see each
    other and cannot all be verified before the first one is refused.
    """

    def __init__(
        self,
        *,
        free_failures: int = 3,
        base_delay: float = 1.0,
        max_delay: float = 300.0,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free_failures = free_failures
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._max_keys = max_keys
        self._clock = clock
        self._keys: OrderedDict[str, _Failures] = OrderedDict()

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may try again (0: now)."""
        entry = self._current(key)
        return 0.0 if entry is None else max(0.0, entry.blocked_until - self._clock())

    def attempt(self, key: str) -> float:
        """Seconds ``key`` must still wait (nothing recorded), or 0 after recording the attempt
        as a failure that :meth:`succeeded` clears."""
        wait = self.retry_after(key)
        if wait > 0:
            return wait
        self.failed(key)
        return 0.0

    def failed(self, key: str) -> float:
        """Record a failure; returns the wait it imposes (0 while failures are still free)."""
        now = self._clock()
        entry = self._current(key) or _Failures(0, now, now)
        entry.count += 1
        entry.last = now
        beyond = entry.count - self.free_failures
        delay = 0.0 if beyond <= 0 else min(self.max_delay, self.base_delay * 2 ** (beyond - 1))
        entry.blocked_until = now + delay
        self._keys[key] = entry
        self._keys.move_to_end(key)
        if len(self._keys) > self._max_keys:
            self._evict(now, keep=key)
        return delay

    def _evict(self, now: float, keep: str) -> None:
        # The oldest keys not in back-off first; look at a bounded number of them.
        for old, entry in itertools.islice(self._keys.items(), 64):
            if old != keep and entry.blocked_until <= now:
                del self._keys[old]
                return
        self._keys.popitem(last=False)

    def succeeded(self, key: str) -> None:
        self._keys.pop(key, None)

    def failures(self, key: str) -> int:
        entry = self._current(key)
        return 0 if entry is None else entry.count

    def _current(self, key: str) -> _Failures | None:
        entry = self._keys.get(key)
        if entry is not None and self._clock() - entry.last > max(
            self.max_delay, entry.blocked_until - entry.last
        ):
            del self._keys[key]
            return None
        return entry
