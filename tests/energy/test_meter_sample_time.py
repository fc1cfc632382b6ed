"""A meter sample's time is no later than the moment the meter measured.

The load controller counts a car, in a grid or board reading, at every limit in force since
the reading's time (``SessionRecord.highest_earlier_offer``): a cut acknowledged after the
meter measured is not in the reading yet. A sample stamped when its read *completed* claims
a measurement after a cut acknowledged while the answer was on its way (a loaded machine,
a slow bus), so the car's old draw in the reading is taken for other load: the estimate
(``grid - known``) rises by the cut and pauses cars that had room (the closed-loop board
test's flake under load). The meter measures after the request was sent, so a sample stamped
when its read started is never newer than its measurement.
"""

from __future__ import annotations

import itertools

from edgegw.config import BusConfig, MeterConfig
from edgegw.energy.meters import MeterPoller, ModbusBus, find_profile
from edgegw.sim.meter import SimMeter


async def test_a_sample_is_stamped_no_later_than_the_meter_measured() -> None:
    ticks = itertools.count(100)

    def clock() -> float:
        """Every look at the clock is one second later (deterministic order of events)."""
        return float(next(ticks))

    measured: list[float] = []
    sim = SimMeter("eastron-sdm630", live=False)
    # The meter measures as the request arrives, like a real one; the poller's clock says when.
    sim.add_request_listener(lambda *_: measured.append(clock()))
    await sim.start()
    bus = ModbusBus(
        BusConfig(transport="tcp", host="127.0.0.1", port=sim.port, timeout=1.0, retries=0),
        reconnect_min_delay=0,
        reconnect_max_delay=0,
    )
    try:
        poller = MeterPoller(
            MeterConfig(name="grid", profile="eastron-sdm630"),
            find_profile("eastron-sdm630"),
            bus,
            clock=clock,
            frozen_after=0,
        )
        sample = await poller.poll_once()
        assert sample is not None and measured
        assert sample.at <= min(measured), (sample.at, measured)
        # A later read whose registers changed is newer, and still no later than its measuring.
        sim.set_currents(1.0, 2.0, 3.0)
        measured.clear()
        later = await poller.poll_once()
        assert later is not None and later.at > sample.at
        assert later.at <= min(measured), (later.at, measured)
    finally:
        await bus.close()
        await sim.stop()
