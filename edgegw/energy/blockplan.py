"""The fewest Modbus block reads that cover the quantities the gateway needs, and a refused
block split in two.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from edgegw.energy.meterprofile import MeterProfile, ProfileError, Quantity, _resolve


@dataclass(frozen=True, slots=True)
class BlockRead:
    """One Modbus request: ``count`` registers from ``address`` with ``function_code``."""

    function_code: int
    address: int
    count: int
    quantities: tuple[Quantity, ...]

    @property
    def key(self) -> tuple[int, int]:
        """The ``(function_code, address)`` key :func:`decode` expects for this block."""
        return (self.function_code, self.address)

    @property
    def end(self) -> int:
        """First address after the block."""
        return self.address + self.count


def _wanted(profile: MeterProfile, quantities: Iterable[Quantity] | None) -> list[Quantity]:
    if quantities is None:
        return list(profile.quantities)
    wanted = list(dict.fromkeys(Quantity(q) for q in quantities))
    missing = [q.value for q in wanted if q not in profile.registers]
    if missing:
        offered = ", ".join(q.value for q in profile.quantities)
        raise ProfileError(
            [
                f"meter profile {profile.id!r} has no register for {', '.join(missing)} "
                f"(it offers: {offered})"
            ]
        )
    return wanted


def plan_reads(
    profile: MeterProfile, quantities: Iterable[Quantity] | None = None
) -> list[BlockRead]:
    """Cover ``quantities`` (default: all the meter offers) with as few reads as allowed.

    Registers are merged into one request when they share a function code, the hole between
    them is at most ``modbus.max_gap`` registers (0: never read registers the map does not
    name) and the request stays within ``modbus.max_read_registers``. Scale-factor registers
    are read along. Merging greedily from the lowest address gives the fewest requests, since
    spans never overlap and any feasible block stays feasible when it starts later.
    """
    spans: dict[tuple[int, int], tuple[int, Quantity | None]] = {}
    for quantity in _wanted(profile, quantities):
        reg = _resolve(profile, quantity)
        spans[(reg.fc, reg.address)] = (reg.words, quantity)
        if reg.exponent_at is not None:
            spans.setdefault(reg.exponent_at, (1, None))
    limit = profile.modbus.max_read_registers
    gap = profile.modbus.max_gap
    blocks: list[BlockRead] = []
    current: BlockRead | None = None
    for (fc, address), (count, owner) in sorted(spans.items()):
        named = (owner,) if owner is not None else ()
        end = address + count
        if (
            current is not None
            and current.function_code == fc
            and address - current.end <= gap
            and end - current.address <= limit
        ):
            current = BlockRead(
                fc, current.address, end - current.address, current.quantities + named
            )
            continue
        if current is not None:
            blocks.append(current)
        current = BlockRead(fc, address, count, named)
    if current is not None:
        blocks.append(current)
    return blocks


def split_block(profile: MeterProfile, block: BlockRead) -> tuple[BlockRead, BlockRead] | None:
    """``block`` as two smaller requests that together read the same values, or ``None`` if
    it holds one value only (a value is never split across requests).

    For a block the meter refused (exception 3 "illegal data value": too many registers;
    exception 2 "illegal data address": the span crosses registers it does not define). The
    cut falls at the value boundary nearest the middle, and each half drops the hole at the
    cut, so a hole the meter refuses ends up outside both halves once small enough.
    """
    spans: list[tuple[int, int, Quantity | None]] = []
    for quantity in block.quantities:
        reg = _resolve(profile, quantity)
        spans.append((reg.address, reg.words, quantity))
    exponents = {_resolve(profile, q).exponent_at for q in profile.quantities}
    for at in sorted(e for e in exponents if e is not None):
        fc, address = at
        if fc == block.function_code and block.address <= address < block.end:
            spans.append((address, 1, None))  # a scale factor planned into this block
    spans.sort(key=lambda span: span[0])
    if len(spans) < 2:
        return None
    middle = block.address + block.count / 2
    best = min(
        range(1, len(spans)),
        key=lambda i: (abs(spans[i][0] - middle), i),
    )
    halves: list[BlockRead] = []
    for part in (spans[:best], spans[best:]):
        start = part[0][0]
        end = max(address + words for address, words, _ in part)
        named = tuple(q for _, _, q in part if q is not None)
        halves.append(BlockRead(block.function_code, start, end - start, named))
    return halves[0], halves[1]
