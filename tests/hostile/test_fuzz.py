"""A bounded fuzz run against a real gateway: mutated and garbage frames from a few chargers
while a good charger's calls keep being answered.

:class:`Mutator` turns valid OCPP 1.6 frames into hostile ones (seeded, so a failure can be
replayed): bytes flipped, cut or repeated, values swapped for huge integers, lone surrogates,
NaN, deep nesting, long strings, newlines in message ids, wrong types, binary frames. The CI
test sends a few thousand; ``tests/bench/fuzz.py`` runs the same mutator for minutes against a
gateway process and prints its figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from edgegw.sim.cloud import SimCloud
from tests.conftest import GatewayFactory, gateway_url, raw_charger

ERROR_CODES_16 = frozenset({
    "NotImplemented", "NotSupported", "InternalError", "ProtocolError", "SecurityError",
    "FormationViolation", "PropertyConstraintViolation", "OccurenceConstraintViolation",
    "TypeConstraintViolation", "GenericError",
})  # fmt: skip
BOOT = {"chargePointVendor": "Fuzz", "chargePointModel": "Mutant"}
SEEDS: list[list[Any]] = [
    [2, "b", "BootNotification", BOOT],
    [2, "h", "Heartbeat", {}],
    [2, "a", "Authorize", {"idTag": "04A1B2C3"}],
    [2, "s", "StatusNotification",
     {"connectorId": 1, "errorCode": "NoError", "status": "Available"}],
    [2, "t", "StartTransaction",
     {"connectorId": 1, "idTag": "04A1B2C3", "meterStart": 0, "timestamp": "2026-01-01T00:00:00Z"}],
    [2, "m", "MeterValues", {"connectorId": 1, "transactionId": 1, "meterValue": [
        {"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": "12.5"}]}]}],
    [2, "x", "StopTransaction",
     {"transactionId": 1, "meterStop": 10, "timestamp": "2026-01-01T00:00:00Z"}],
    [2, "d", "DataTransfer", {"vendorId": "v", "data": "hello"}],
    [2, "u", "FooBar", {}],  # an unknown action: answered by the gateway itself
    [3, "r", {"status": "Accepted"}],
    [4, "e", "GenericError", "", {}],
]  # fmt: skip
HOSTILE_VALUES: list[Any] = [
    10**400, -(2**63), 2**64, 1e308, -0.0, "\ud800", "\u0000", "a\nforged line", "x" * 4000,
    "", None, True, [], {}, [[[[[]]]]], {"key": "AuthorizationKey", "value": "pw"},
]  # fmt: skip


class Mutator:
    """Hostile frames from valid ones; the same seed gives the same frames."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.ids = 0

    def frame(self) -> str | bytes:
        rng = self.rng
        base = json.loads(json.dumps(rng.choice(SEEDS)))
        self.ids += 1
        if len(base) > 1:
            base[1] = f"{base[1]}{self.ids}"
        kind = rng.randrange(10)
        if kind == 0:
            return rng.randbytes(rng.randrange(1, 200))  # a binary frame
        if kind == 1:
            text = json.dumps(base)
            return text[: rng.randrange(len(text))]  # cut short
        if kind == 2:
            return self._flip(json.dumps(base))
        if kind == 3:
            return self._deep()
        if kind == 4 and len(base) > 1:
            base[1] = rng.choice(HOSTILE_VALUES)  # the message id
        elif kind == 5 and len(base) > 2:
            base[2] = rng.choice([*HOSTILE_VALUES, "Nope", "heartbeat", "A" * 65000])
        elif kind == 6:
            self._poison(base)
        elif kind == 7:
            base = base[: rng.randrange(len(base) + 1)] + [rng.choice(HOSTILE_VALUES)] * (kind % 2)
        elif kind == 8:
            base[0] = rng.choice([0, 1, 5, -2, "2", 2.0, None, 10**30])
        text = json.dumps(base, ensure_ascii=rng.random() < 0.5)
        if not _encodable(text):  # a lone surrogate: escaped, as JSON allows
            text = json.dumps(base)
        return text

    def _flip(self, text: str) -> str:
        chars = list(text)
        for _ in range(self.rng.randrange(1, 6)):
            at = self.rng.randrange(len(chars))
            chars[at] = self.rng.choice('[]{}",:0\\ \x00\u00e9a')
        return "".join(chars)

    def _deep(self) -> str:
        depth = self.rng.choice([50, 500, 5000, 20000])
        return f'[2,"deep{self.ids}","DataTransfer",{{"vendorId":"v","data":' + (
            "[" * depth + "]" * depth + "}]"
        )

    def _poison(self, value: Any) -> None:
        """Replace one value somewhere inside ``value`` with a hostile one."""
        rng = self.rng
        for _ in range(6):
            if isinstance(value, list) and value:
                at = rng.randrange(len(value))
                if rng.random() < 0.4 or not isinstance(value[at], list | dict):
                    value[at] = rng.choice(HOSTILE_VALUES)
                    return
                value = value[at]
            elif isinstance(value, dict) and value:
                key = rng.choice(list(value))
                if rng.random() < 0.4 or not isinstance(value[key], list | dict):
                    value[key] = rng.choice(HOSTILE_VALUES)
                    return
                value = value[key]
            else:
                return


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


@dataclass
class FuzzStats:
    sent: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    malformed: list[str] = field(default_factory=list)  # answers that are not OCPP-J answers
    closes: Counter[int] = field(default_factory=Counter)


def check_answer(raw: str | bytes, stats: FuzzStats) -> None:
    """An answer from the gateway must be a well-formed CALLRESULT or CALLERROR."""
    try:
        frame = json.loads(raw)
    except ValueError:
        stats.malformed.append(repr(raw)[:200])
        return
    if (
        not isinstance(frame, list)
        or not frame
        or frame[0] not in (2, 3, 4)
        or (frame[0] == 4 and (len(frame) != 5 or frame[2] not in ERROR_CODES_16))
    ):
        stats.malformed.append(repr(raw)[:200])
    elif frame[0] == 4:
        stats.answers[f"CALLERROR {frame[2]}"] += 1
    else:
        stats.answers[f"type {frame[0]}"] += 1


async def fuzz_charger(url: str, charger_id: str, seed: int, frames: int, stats: FuzzStats) -> None:
    """Send ``frames`` mutated frames as ``charger_id``, reconnecting when closed."""
    mutator = Mutator(seed)
    while stats.sent < frames:
        try:
            async with connect(
                f"{url}/{charger_id}",
                subprotocols=[Subprotocol("ocpp1.6")],
                proxy=None,
                max_size=None,
            ) as ws:
                await _fuzz_connection(ws, mutator, frames, stats)
        except InvalidStatus as exc:  # e.g. reconnecting too often: the gateway's right
            stats.closes[exc.response.status_code] += 1
            await asyncio.sleep(1)
        except (InvalidHandshake, OSError):  # refused at accept (a connection limit)
            stats.closes[0] += 1
            await asyncio.sleep(0.2)


async def _fuzz_connection(
    ws: ClientConnection, mutator: Mutator, frames: int, stats: FuzzStats
) -> None:
    async def read() -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                check_answer(raw, stats)

    async with asyncio.TaskGroup() as group:
        reader = group.create_task(read())
        try:
            while stats.sent < frames:
                frame = mutator.frame()
                await ws.send(frame)
                stats.sent += 1
        except ConnectionClosed:
            pass
        finally:
            with contextlib.suppress(ConnectionClosed):
                await ws.close()
            await reader
    if ws.close_code is not None:
        stats.closes[ws.close_code] += 1


@contextlib.asynccontextmanager
async def good_charger(url: str, charger_id: str) -> AsyncIterator[list[float]]:
    """A well-behaved charger sending Heartbeats; yields the round trips so far (s)."""
    loop = asyncio.get_running_loop()
    rtts: list[float] = []
    stop = asyncio.Event()
    async with raw_charger(url, charger_id) as cp:
        assert (await cp.call("BootNotification", BOOT))[0] == 3

        async def beat() -> None:
            while not stop.is_set():
                started = loop.time()
                answer = await cp.call("Heartbeat", {})
                assert answer[0] == 3 and "currentTime" in answer[2], answer
                rtts.append(loop.time() - started)

        async with asyncio.TaskGroup() as group:
            group.create_task(beat())
            try:
                yield rtts
            finally:
                stop.set()


class CrashWatch(logging.Handler):
    """Collects ERROR records: a crash anywhere in the gateway is one."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name}: {record.getMessage()}")


async def test_fuzzing_chargers_while_a_good_one_is_served(make_gateway: GatewayFactory) -> None:
    crashes = CrashWatch()
    logging.getLogger("edgegw").addHandler(crashes)
    try:
        async with SimCloud() as cloud:
            gateway = await make_gateway(
                cloud_url=cloud.url,
                server={"max_messages_per_second": 0, "max_connects_per_minute": 600},
                chargers=[{"id": f"FUZZ{n}"} for n in range(3)] + [{"id": "GOOD"}],
            )
            url = gateway_url(gateway)
            stats = [FuzzStats() for _ in range(3)]
            async with good_charger(url, "GOOD") as rtts:
                before = len(rtts)
                async with asyncio.TaskGroup() as group:
                    for n, s in enumerate(stats):
                        group.create_task(fuzz_charger(url, f"FUZZ{n}", 1000 + n, 600, s))
                during = len(rtts) - before
            async with raw_charger(url, "FUZZ0") as again:  # a fuzzer behaving now is served
                assert (await again.call("Heartbeat", {}))[0] == 3
    finally:
        logging.getLogger("edgegw").removeHandler(crashes)
    assert during > 0  # the good charger was answered while the others fuzzed
    malformed = [m for s in stats for m in s.malformed]
    assert malformed == []
    errors = sum(n for s in stats for k, n in s.answers.items() if k.startswith("CALLERROR"))
    assert errors > 100, [s.answers for s in stats]  # invalid calls were answered as such
    assert sum(s.sent for s in stats) >= 1800
    assert crashes.lines == []
