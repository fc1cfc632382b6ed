"""``chargers probe`` of an OCPP 2.0.1 station: GetBaseReport, its NotifyReport parts read into
the probe's result. The reading of one NotifyReport (pure), then the probe over real sockets:
a real daemon relaying to a CSMS written on the ``ocpp`` library's v201 package, a simulated
2.0.1 station that answers GetBaseReport and sends its report in parts."""

from __future__ import annotations

from typing import Any

import pytest

from edgegw.ocpp.events import CallExchanged, DeviceReported
from edgegw.ocpp.interpret201 import interpret201
from tests.commission.test_devicemodel import station_reports


def test_a_notify_report_part_is_read_as_it_was_sent() -> None:
    part = station_reports()[1]
    heard, reported = interpret201("CS", "NotifyReport", part, {}, 5.0)
    assert heard == CallExchanged(charger_id="CS", at=5.0, action="NotifyReport")
    assert reported == DeviceReported(
        charger_id="CS",
        at=5.0,
        request_id=7,
        seq_no=0,
        tbc=True,
        report_data=tuple(part["reportData"]),
    )
    last = interpret201("CS", "NotifyReport", station_reports()[0], {}, 5.0)[1]
    assert isinstance(last, DeviceReported) and (last.seq_no, last.tbc) == (2, False)


@pytest.mark.parametrize(
    "request_",
    [
        {"seqNo": 0, "generatedAt": "x"},
        {"requestId": -1, "seqNo": 0},
        {"requestId": 1, "seqNo": "0"},
        {"requestId": True, "seqNo": 0},
    ],
)
def test_a_part_without_its_place_gives_no_event(request_: Any) -> None:
    assert len(interpret201("CS", "NotifyReport", request_, {}, 1.0)) == 1


def test_entries_that_are_no_objects_are_left_out() -> None:
    request = {"requestId": 3, "seqNo": 0, "reportData": [1, {"component": {}}, "x"]}
    (_, reported) = interpret201("CS", "NotifyReport", request, {}, 1.0)
    assert isinstance(reported, DeviceReported)
    assert reported.report_data == ({"component": {}},) and reported.tbc is False
