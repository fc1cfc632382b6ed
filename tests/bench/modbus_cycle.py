"""Meter read-cycle benchmark: one Eastron SDM630 over RTU (socat pty pair) and over TCP.

Run:  .venv/bin/python tests/bench/modbus_cycle.py --reads 300 --baud 9600

The gateway's bus code (`edgegw.energy.meters`) reads a simulated SDM630 (`edgegw.sim.meter`)
with the block plan the profile allows (one request for the whole map). Printed per transport:
the cycle time of one meter read (p50/p99/max), the CPU time per read, and for RTU the
theoretical wire time of the same exchange at the given baud rate:
bytes x bits-per-character / baud, plus the 3.5-character silence before the request and
before the answer.

A pty does not pace bytes at the baud rate, so the RTU figure measured here is the software
cost (gateway + pymodbus + the simulated meter); on a real RS-485 line the wire time and the
meter's own turnaround (often 20-50 ms) come on top. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import pymodbus

from edgegw.config import BusConfig, MeterConfig
from edgegw.energy.meters import MeterPoller, ModbusBus, find_profile, rtu_silent_interval
from edgegw.energy.registers import BlockRead, MeterProfile, plan_reads
from edgegw.sim.meter import SimMeter, virtual_serial_pair

REQUEST_BYTES = 8  # unit, function, address (2), count (2), CRC (2)


def answer_bytes(block: BlockRead) -> int:
    return 5 + 2 * block.count  # unit, function, byte count, data, CRC (2)


def wire_time(blocks: list[BlockRead], baud: int, bits_per_char: int) -> float:
    silence = rtu_silent_interval(baud, bits_per_char)
    total = 0.0
    for block in blocks:
        chars = REQUEST_BYTES + answer_bytes(block)
        total += chars * bits_per_char / baud + 2 * silence
    return total


async def measure(poller: MeterPoller, reads: int) -> tuple[list[float], float]:
    for _ in range(10):  # connect and warm up
        assert await poller.poll_once() is not None, poller.health
    cycles: list[float] = []
    cpu0 = time.process_time()
    for _ in range(reads):
        # Leave the RTU silent interval behind us, as a 1 s poll period does, so that the
        # figure is the read itself and not the bus waiting out the 3.5-character gap.
        await asyncio.sleep(0.01)
        sample = await poller.poll_once()
        assert sample is not None, poller.health
        assert poller.last_cycle_s is not None
        cycles.append(poller.last_cycle_s)
    cpu = (time.process_time() - cpu0) / reads  # includes the idle loop around the sleeps
    return cycles, cpu


def report(label: str, cycles: list[float], cpu: float) -> None:
    ordered = sorted(cycles)
    p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)]
    print(
        f"{label:<34} cycle p50 {statistics.median(ordered) * 1000:7.2f} ms  "
        f"p99 {p99 * 1000:7.2f} ms  max {ordered[-1] * 1000:7.2f} ms  "
        f"CPU (both ends) {cpu * 1000:5.2f} ms/read"
    )


async def run_rtu(profile: MeterProfile, baud: int, reads: int, tmp: Path) -> list[float]:
    async with virtual_serial_pair(tmp) as (meter_end, gateway_end):
        sim = SimMeter(profile, transport="rtu", device=meter_end, baudrate=baud)
        bus = ModbusBus(BusConfig(transport="rtu", device=gateway_end, baudrate=baud), name="rtu")
        config = MeterConfig(name="sdm630", profile=profile.id)
        poller = MeterPoller(config, profile, bus, clock=time.perf_counter, frozen_after=0)
        async with sim:
            try:
                cycles, cpu = await measure(poller, reads)
            finally:
                await bus.close()
    report(f"RTU {baud} 8N1 over a socat pty", cycles, cpu)
    return cycles


async def run_tcp(profile: MeterProfile, reads: int) -> None:
    async with SimMeter(profile) as sim:
        bus = ModbusBus(BusConfig(transport="tcp", host="127.0.0.1", port=sim.port), name="tcp")
        config = MeterConfig(name="sdm630", profile=profile.id)
        poller = MeterPoller(config, profile, bus, clock=time.perf_counter, frozen_after=0)
        try:
            cycles, cpu = await measure(poller, reads)
        finally:
            await bus.close()
    report("TCP over loopback", cycles, cpu)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reads", type=int, default=300)
    parser.add_argument("--baud", type=int, default=9600)
    args = parser.parse_args()
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    profile = find_profile("eastron-sdm630")
    blocks = plan_reads(profile)
    print(
        f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cores, "
        f"{platform.platform()}, Python {platform.python_version()}, "
        f"pymodbus {pymodbus.__version__}"
    )
    layout = ", ".join(f"FC{b.function_code} {b.address:#06x}+{b.count}" for b in blocks)
    total = sum(REQUEST_BYTES + answer_bytes(b) for b in blocks)
    print(f"SDM630 read plan: {len(blocks)} request(s) [{layout}], {total} bytes on the wire")
    with tempfile.TemporaryDirectory() as tmp:
        rtu = await run_rtu(profile, args.baud, args.reads, Path(tmp))
    await run_tcp(profile, args.reads)
    overhead = statistics.median(rtu)
    print(f"theoretical RTU wire time at {args.baud} baud (bytes x bits / baud + 2 x 3.5 chars):")
    for bits, name in (
        (11, "11 bits/char (8E1, 8N2: the Modbus spec)"),
        (10, "10 bits/char (8N1)"),
    ):
        wire = wire_time(blocks, args.baud, bits)
        print(
            f"  {name:<42} {wire * 1000:7.2f} ms; with the measured software cost "
            f"{(wire + overhead) * 1000:7.2f} ms, + a 20-50 ms meter turnaround "
            f"{(wire + overhead + 0.02) * 1000:5.0f}-{(wire + overhead + 0.05) * 1000:.0f} ms"
        )
    wire = wire_time(blocks, args.baud, 11)
    print(
        f"=> at one read per second, one {args.baud} baud line carries about "
        f"{int(1 / (wire + overhead + 0.05))} SDM630s (worst case above)"
    )


if __name__ == "__main__":
    asyncio.run(main())
