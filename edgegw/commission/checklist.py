"""The commissioning checklist against a live charger, and the report it gives.

Each step passes, fails or is skipped, with its detail, what to do next and how long it took:
connected, boot accepted, heartbeat, status per connector and meter values per phase here;
the charging-profile steps in :mod:`~edgegw.commission.profilecheck`, the card step in
:mod:`~edgegw.commission.cardcheck`. A step that needs something from the charger asks for it
(TriggerMessage) when the observer has not seen it on this connection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

from edgegw.commission.cardcheck import CardSteps
from edgegw.commission.observer import ChargerGone, Exchange, on_connector
from edgegw.commission.probe import CURRENT, key_value
from edgegw.commission.profilecheck import ProfileSteps
from edgegw.commission.run import STEPS, JsonDict, NoAnswer, Step, ago, iso
from edgegw.energy.sampling import configuration_keys, int_value
from edgegw.ocpp.events import ChargerBooted, ConnectorStatus, Measured

log = logging.getLogger(__name__)

RUN_KEYS: Final = ("NumberOfConnectors", "HeartbeatInterval", "SupportedFeatureProfiles")
"""What the ``connected`` step reads (GetConfiguration) for the steps after it."""


class Checklist(ProfileSteps, CardSteps):
    """The checklist for one charger: :meth:`execute` runs every step and returns the report."""

    async def execute(self) -> JsonDict:
        order: list[tuple[str, Callable[[Step], Awaitable[None]]]] = [
            ("connected", self._connected),
            ("boot", self._boot),
            ("heartbeat", self._heartbeat),
            ("status", self._status),
            ("meter_values", self._meter_values),
            ("profile_accepted", self.check_profile),
            ("card", self.check_card),
        ]
        gone: str | None = None
        for name, run in order:
            step = self.steps[name]
            if gone is not None:
                step.set("skip", gone)
                if name == "profile_accepted":
                    self.steps["profile_honoured"].set("skip", gone)
                    self.steps["profile_removed"].set("skip", gone)
                continue
            began = time.monotonic()
            try:
                await run(step)
            except (NoAnswer, ChargerGone) as exc:
                step.set("fail", f"the charger stopped answering: {exc}")
            except Exception:
                log.exception("%s: commissioning step %s failed", self.charger_id, name)
                step.set("fail", "the gateway failed on this step; see its log")
            if not step.duration_s:  # a step may time its own parts
                step.duration_s = time.monotonic() - began
            if self.charger_id not in self.gw.sessions:
                gone = (
                    "not checked: the charger is not connected"
                    if name == "connected"
                    else "not checked: the charger disconnected during commissioning"
                )
        for step in self.steps.values():
            if not step.detail:  # a later part of a step that failed early
                step.set("skip", "not checked: the step before it failed")
        steps = [self.steps[name].as_dict() for name, _title in STEPS]
        counts = {s: sum(1 for x in steps if x["status"] == s) for s in ("pass", "fail", "skip")}
        finished = self.clock()
        row = self.row
        return {
            "charger": self.charger_id,
            "started_at": self.started,
            "finished_at": finished,
            "duration_s": round(finished - self.started, 3),
            "passed": counts["fail"] == 0,
            "counts": counts,
            "charger_info": {
                "vendor": row.vendor if row else None,
                "model": row.model if row else None,
                "serial": row.serial if row else None,
                "firmware": row.firmware if row else None,
                "address": row.last_address if row else None,
                "hardware_profile": self.model.id,
                "connectors": self.connectors,
            },
            "load_capping": self.gw.controller is not None,
            "card": self.opt.card.canonical if self.opt.card else None,
            "steps": steps,
        }

    # ------------------------------------------------------------------ steps

    async def _connected(self, step: Step) -> None:
        cid = self.charger_id
        if cid not in self.gw.sessions:
            seen = (
                f"last seen {iso(self.row.last_seen)}"
                if self.row is not None
                else "it never connected"
            )
            step.set(
                "fail",
                f"{cid} is not connected to the gateway ({seen})",
                f"check the charger's OCPP server URL (…/{cid} on this gateway's port "
                f"{self.gw.config.server.port}), its network and its password; "
                f"`edgegw chargers show {cid}` shows refused attempts",
            )
            return
        since = self.obs.connected_since(cid)
        address = self.row.last_address if self.row is not None else None
        try:
            answer = await self.call("GetConfiguration", {"key": list(RUN_KEYS)})
        except NoAnswer as exc:
            step.set(
                "fail",
                f"connected from {address or 'an unknown address'}, but it does not answer the "
                f"gateway's calls: {exc}",
                "restart the charger; if it persists, its OCPP link is unhealthy",
            )
            return
        self.keys = configuration_keys(answer)
        count = int_value(key_value(self.keys, "NumberOfConnectors"))
        if count is None:
            stored = await self.store().connector_status(cid)
            count = max([c for c in stored if c > 0], default=1)
        self.connectors = list(range(1, count + 1))
        how_long = f", for {max(0.0, self.clock() - since):.0f} s" if since is not None else ""
        step.set(
            "pass",
            f"connected from {address or 'an unknown address'}{how_long}; answers the gateway's "
            f"calls; {count} connector(s)",
            address=address,
            connected_since=since,
            connectors=count,
        )

    async def _boot(self, step: Step) -> None:
        boots = self.obs.seen(self.charger_id, ["BootNotification"])
        if not boots and (self.row is None or self.row.last_boot is None):
            status = await self.trigger("BootNotification")
            if status != "Accepted":
                step.set(
                    "fail",
                    f"no BootNotification recorded, and TriggerMessage BootNotification was "
                    f"answered {status}",
                    "restart the charger so that it boots against the gateway",
                )
                return
            try:
                boots = [
                    await self.obs.wait(
                        self.charger_id,
                        ["BootNotification"],
                        since=self.started,
                        timeout=self.opt.step_timeout,
                    )
                ]
            except TimeoutError:
                step.set(
                    "fail",
                    f"no BootNotification within {self.opt.step_timeout:.0f} s of asking for one",
                    "restart the charger so that it boots against the gateway",
                )
                return
        if boots:
            last = boots[-1]
            booted = last.event
            assert isinstance(booted, ChargerBooted)  # what the observer keeps a boot as
            status = booted.status or "no status"
            who = " ".join(t for t in (booted.vendor, booted.model, booted.firmware) if t)
            if status == "Accepted":
                step.set(
                    "pass",
                    f"BootNotification Accepted at {iso(last.at)} ({who})",
                    boot_status=status,
                    at=last.at,
                )
            else:
                step.set(
                    "fail",
                    f"the last BootNotification ({who}) was answered {status}",
                    "the cloud does not know this charger yet: register its identity "
                    f"{self.charger_id!r} in the cloud CSMS, then restart the charger",
                    boot_status=status,
                    at=last.at,
                )
            return
        assert self.row is not None and self.row.last_boot is not None
        step.set(
            "pass",
            f"last BootNotification at {iso(self.row.last_boot)}, before this run of the "
            "gateway; the charger has been exchanging messages since",
            at=self.row.last_boot,
        )

    async def _heartbeat(self, step: Step) -> None:
        interval = int_value(key_value(self.keys, "HeartbeatInterval")) or (
            self.gw.config.server.heartbeat_interval
        )
        now = self.clock()
        recent = self.obs.seen(self.charger_id, ["Heartbeat"], since=now - 1.5 * interval)
        if recent:
            step.set(
                "pass",
                f"last Heartbeat {ago(now, recent[-1].at)} (interval {interval} s)",
                interval_s=interval,
            )
            return
        asked = self.clock()
        status = await self.trigger("Heartbeat")
        if status != "Accepted":
            step.set(
                "fail",
                f"no Heartbeat in the last {1.5 * interval:.0f} s, and TriggerMessage Heartbeat "
                f"was answered {status}",
                "check the charger's HeartbeatInterval and that it keeps its OCPP link alive",
                interval_s=interval,
            )
            return
        try:
            beat = await self.obs.wait(
                self.charger_id, ["Heartbeat"], since=asked, timeout=self.opt.step_timeout
            )
        except TimeoutError:
            step.set(
                "fail",
                f"no Heartbeat within {self.opt.step_timeout:.0f} s of TriggerMessage Heartbeat",
                "check the charger's HeartbeatInterval and that it keeps its OCPP link alive",
                interval_s=interval,
            )
            return
        since = self.obs.connected_since(self.charger_id)
        window = 1.5 * interval if since is None else min(1.5 * interval, now - since)
        step.set(
            "pass",
            f"sent a Heartbeat {beat.at - asked:.2f} s after being asked (none of its own in "
            f"the last {window:.0f} s; its interval is {interval} s)",
            interval_s=interval,
        )

    async def _status(self, step: Step) -> None:
        since = self.obs.connected_since(self.charger_id) or self.started

        def latest() -> dict[int, Exchange]:
            out: dict[int, Exchange] = {}
            for e in self.obs.seen(self.charger_id, ["StatusNotification"], since=since):
                if e.connector is not None:
                    out[e.connector] = e
            return out

        seen = latest()
        triggered = ""
        if any(c not in seen for c in self.connectors):
            asked = self.clock()
            status = await self.trigger("StatusNotification")
            triggered = f"TriggerMessage StatusNotification: {status}"
            if status == "Accepted":
                for connector in self.connectors:
                    if connector in seen:
                        continue
                    try:
                        await self.obs.wait(
                            self.charger_id,
                            ["StatusNotification"],
                            since=asked,
                            timeout=self.opt.step_timeout,
                            predicate=on_connector(connector),
                        )
                    except TimeoutError:
                        break
                seen = latest()
        stored = await self.store().connector_status(self.charger_id)
        parts: list[str] = []
        bad: list[str] = []
        missing: list[int] = []
        statuses: JsonDict = {}
        for connector in self.connectors:
            exchange = seen.get(connector)
            if exchange is None:
                missing.append(connector)
                if connector in stored:
                    status, error = stored[connector]
                    parts.append(f"{connector}: {status} (recorded earlier)")
                    statuses[str(connector)] = {"status": status, "error_code": error}
                continue
            reported = exchange.event
            assert isinstance(reported, ConnectorStatus)  # what the observer keeps it as
            status = reported.status
            error = reported.error_code or "NoError"
            statuses[str(connector)] = {"status": status, "error_code": error}
            parts.append(f"{connector}: {status}" + ("" if error == "NoError" else f" ({error})"))
            if status in ("Faulted", "Unavailable") or error != "NoError":
                bad.append(f"connector {connector} is {status}, error {error}")
        if missing:
            why = f" ({triggered})" if triggered else ""
            step.set(
                "fail",
                f"no StatusNotification from connector(s) {', '.join(map(str, missing))} on this "
                f"connection{why}; " + ("; ".join(parts) or "nothing recorded"),
                "restart the charger; a charger must report each connector's status when it "
                "connects",
                connectors=statuses,
            )
            return
        if bad:
            step.set(
                "fail",
                "; ".join(bad),
                "clear the fault on the charger (its display or app); an Unavailable connector "
                "was disabled (ChangeAvailability Inoperative): enable it from the charger or "
                "the cloud",
                connectors=statuses,
            )
            return
        step.set("pass", "; ".join(parts), connectors=statuses)

    async def _meter_values(self, step: Step) -> None:
        phases = self.phases()
        wanted = ["L1", "L2", "L3"][:phases]
        found: dict[str, JsonDict] = {}
        problems: list[str] = []
        details: list[str] = []
        not_sampled = False  # a connector does not sample Current.Import at all
        for connector in self.connectors:
            asked = self.clock()
            status = await self.trigger("MeterValues", connector)
            if status != "Accepted":
                problems.append(f"connector {connector}: TriggerMessage MeterValues {status}")
                asked = self.started  # a periodic sample will do
            try:
                exchange = await self.obs.wait(
                    self.charger_id,
                    ["MeterValues"],
                    since=asked,
                    timeout=self.opt.step_timeout,
                    predicate=on_connector(connector),
                )
            except TimeoutError:
                problems.append(
                    f"connector {connector}: no MeterValues within {self.opt.step_timeout:.0f} s"
                )
                continue
            measured = exchange.event
            assert isinstance(measured, Measured)  # what the observer keeps it as
            seen = sampled(measured)
            found[str(connector)] = seen
            currents = seen["current_import"]
            if not currents:
                problems.append(no_current(connector, seen))
                not_sampled = not_sampled or CURRENT not in seen["measurands"]
                continue
            missing = [p for p in wanted if p not in currents]
            if missing:
                problems.append(
                    f"connector {connector}: {CURRENT} without phase(s) {', '.join(missing)} "
                    f"(reported: {', '.join(currents) or 'a total only'})"
                )
                continue
            amps = ", ".join(f"{p} {currents[p]} A" for p in wanted)
            details.append(f"connector {connector}: {CURRENT} {amps}")
        if problems:
            hint = (
                f"run `edgegw chargers configure {self.charger_id}` to ask for {CURRENT}"
                if not_sampled
                else "check the charger's metering settings (per-phase measurement); without "
                "per-phase currents load capping counts its cars on every phase at their limit"
            )
            step.set("fail", "; ".join(problems + details), hint, connectors=found)
            return
        step.set(
            "pass",
            "; ".join(details) + f" ({phases} phase(s) expected)",
            connectors=found,
        )


def no_current(connector: int, seen: JsonDict) -> str:
    """Why a connector's MeterValues (:func:`sampled`) gave load capping no current."""
    measurands = seen["measurands"]
    if CURRENT in measurands:  # sampled, but not where or how load capping reads it
        return (
            f"connector {connector}: {CURRENT} reported only at Inlet or in an unsupported "
            "unit (or not as a plain reading of now), which load capping does not read"
        )
    return f"connector {connector}: no {CURRENT} (samples {', '.join(measurands) or 'nothing'})"


def sampled(measured: Measured) -> JsonDict:
    """Measurands and ``Current.Import`` (A) per phase, ``total`` without one, in a MeterValues.

    The currents are the ones load capping reads (:mod:`edgegw.ocpp.interpret`: the
    connector's side, not ``Inlet``; L1..L3 and L1-N..L3-N).
    """
    currents: dict[str, float] = {}
    for phase, amps in zip(("L1", "L2", "L3"), measured.current_a or (), strict=False):
        if amps is not None:
            currents[phase] = round(amps, 2)
    if measured.overall_current_a is not None:
        currents["total"] = round(measured.overall_current_a, 2)
    return {"measurands": list(measured.measurands), "current_import": currents}
