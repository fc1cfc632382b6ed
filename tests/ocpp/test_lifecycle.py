"""The session rule shared by the load controller and the live state."""

from __future__ import annotations

import pytest

from edgegw.ocpp.lifecycle import measured_opens, record_ends, status_ends, status_opens, stop_ends


@pytest.mark.parametrize("status", ["Charging", "SuspendedEV", "SuspendedEVSE"])
def test_an_active_status_opens_and_ends_nothing(status: str) -> None:
    assert status_opens(status) and not status_ends(status) and not record_ends(status)


@pytest.mark.parametrize("status", ["Available", "Unavailable", "Faulted", "Reserved"])
def test_an_idle_status_ends_the_load_and_the_record(status: str) -> None:
    assert status_ends(status) and record_ends(status) and not status_opens(status)


def test_finishing_ends_the_load_and_the_record_waits_for_its_stop() -> None:
    assert status_ends("Finishing") and not record_ends("Finishing")


@pytest.mark.parametrize("status", ["Preparing", "Occupied", None])
def test_other_statuses_change_nothing(status: str | None) -> None:
    assert not status_opens(status) and not status_ends(status) and not record_ends(status)


def test_a_measurement_opens_a_session_only_off_an_idle_connector_and_with_an_id() -> None:
    assert measured_opens("Charging", "7") and measured_opens(None, "7")
    assert not measured_opens("Available", "7") and not measured_opens("Charging", None)


def test_a_stop_ends_only_its_own_session_never_on_none() -> None:
    assert stop_ends("7", "7") and not stop_ends("7", "8")
    assert not stop_ends(None, None)
