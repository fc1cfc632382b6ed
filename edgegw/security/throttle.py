"""Rate limits: the failed-login back-off and the per-connection message token bucket.

Both are pure bookkeeping on a monotonic clock (injected, so tests need no sleeping); the
server decides what to do when a limit is hit.
"""

from __future__ import annotations

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
    keys are remembered (the oldest go first), so many attacking addresses cannot exhaust
    memory.
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
        while len(self._keys) > self._max_keys:
            self._keys.popitem(last=False)
        return delay

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
