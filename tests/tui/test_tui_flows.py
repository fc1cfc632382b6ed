"""TUI flows on canned daemon answers: missing ops, users who may only look, dialogs, export."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path
from typing import Any

from textual.widgets import DataTable, Input

from edgegw.tui.app import CaretakerApp
from edgegw.tui.dialogs import FormDialog, NoticeDialog
from edgegw.tui.picker import ChargerPicker
from edgegw.tui.text import UNICODE
from tests.tui.conftest import text_of, until
from tests.tui.fakes import NOW, TZ, FakeBackend, default_answers, ops_listing, site_snapshot


def app_on(backend: FakeBackend, **kwargs: Any) -> CaretakerApp:
    return CaretakerApp(backend, clock=lambda: NOW, tz=TZ, glyphs=UNICODE, **kwargs)


def keys(app: CaretakerApp) -> set[str]:
    return {key for key, active in app.screen.active_bindings.items() if active.enabled}


async def test_an_older_daemon_without_the_action_ops_says_so() -> None:
    listing = [o for o in ops_listing() if not o["op"].startswith("chargers.")]
    backend = FakeBackend(ops=listing)
    app = app_on(backend)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("2")
        await pilot.pause()
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, NoticeDialog), "the explanation")
        notice = app.screen
        assert isinstance(notice, NoticeDialog)
        assert "not available in this daemon version" in notice.body_text
        await pilot.press("escape")
        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, NoticeDialog), "max current explained")
        notice = app.screen
        assert isinstance(notice, NoticeDialog) and "load controller" in notice.body_text
        await pilot.press("escape")
    assert not [op for op, _ in backend.calls if op.startswith("chargers.")]


async def test_a_daemon_of_another_version_is_said_once_in_words() -> None:
    """A daemon whose snapshot is not this TUI's (or that has no ``live.snapshot``): one clear
    message on the dashboard and in a notification, no half-read picture."""
    answers = default_answers()
    answers["status"] = {"version": "0.0.9", "cloud": None, "chargers": []}
    odd = site_snapshot()
    odd["site"]["grid_a"] = odd["site"].pop("current_a")  # a renamed field
    answers["live.snapshot"] = odd
    backend = FakeBackend(answers)
    app = app_on(backend, poll_interval=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.ctx.data.mismatch is not None, "the mismatch noticed")
        assert app.ctx.data.snapshot is None
        shown = text_of(app.main.query_one("#phases"))
        assert "edgegw 0.0.9" in shown and "different versions" in shown
        assert "missing current_a; unknown grid_a" in shown
        await pilot.pause(0.3)  # polls again: still one notification
        assert len(app._notifications) == 1
        backend.answers["live.snapshot"] = (
            site_snapshot()
        )  # the daemon restarted on the new version
        await until(pilot, lambda: app.ctx.data.snapshot is not None, "the picture back")
        assert app.ctx.data.mismatch is None
    listing = [o for o in ops_listing() if not o["op"].startswith("live.")]
    app = app_on(FakeBackend(default_answers(), ops=listing))
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.ctx.data.mismatch is not None, "the mismatch noticed")
        assert "no 'live.snapshot' op" in (app.ctx.data.mismatch or "")


async def test_a_user_without_admin_rights_gets_no_action_keys() -> None:
    app = app_on(FakeBackend(ops=ops_listing(admin=False)))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert "VIEW ONLY" in text_of(app.main.query_one("#navbar"))
        await pilot.press("2")
        await pilot.pause()
        assert not {"s", "u", "r", "e", "m", "f"} & keys(app)
        await pilot.press("4")
        await pilot.pause()
        assert not {"b", "u", "e", "a", "t", "d"} & keys(app)
        assert "slash" in keys(app)  # looking (searching) is still possible


async def test_editing_a_card_sends_only_what_changed_and_cancel_sends_nothing() -> None:
    backend = FakeBackend()
    backend.answers["cards.update"] = {"action": "updated", "card": {}, "warnings": []}
    app = app_on(backend)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("4")
        table = app.main.query_one("#card-table", DataTable)
        await until(pilot, lambda: table.row_count == 3, "cards listed")
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, FormDialog), "the edit form")
        await pilot.press("escape")
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, FormDialog), "the edit form")
        form = app.screen
        assert isinstance(form, FormDialog)
        owner = form.query_one("#field-owner", Input)
        assert owner.value == "Alice Martin"
        owner.value = "Alice Dupont"
        await pilot.press("enter")
        await until(
            pilot, lambda: any(op == "cards.update" for op, _ in backend.calls), "the update"
        )
    updates = [args for op, args in backend.calls if op == "cards.update"]
    assert updates == [{"card": "04A1B2C3", "owner": "Alice Dupont", "wait": 5}]


async def test_sessions_export_to_csv(tmp_path: Path) -> None:
    app = app_on(FakeBackend(), export_dir=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("3")
        table = app.main.query_one("#session-table", DataTable)
        await until(pilot, lambda: table.row_count == 4, "sessions listed")
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, FormDialog), "the export form")
        form = app.screen
        assert isinstance(form, FormDialog)
        path = form.query_one("#field-path", Input).value
        assert path == str(tmp_path / "edgegw-sessions-2026-01-01-100000.csv")
        await pilot.press("enter")
        await until(pilot, lambda: Path(path).exists(), "the file written")
    text = await asyncio.to_thread(Path(path).read_text, encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["owner"] for r in rows] == ["Alice Martin", "Bob Janssens", "", "Alice Martin"]
    assert rows[1]["energy_kwh"] == "12.5" and rows[1]["duration_min"] == "90.0"
    assert rows[0]["started"] == "2026-01-01 09:00:00" and rows[0]["stopped"] == ""


async def test_owner_filter_narrows_the_sessions() -> None:
    app = app_on(FakeBackend())
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("3")
        table = app.main.query_one("#session-table", DataTable)
        await until(pilot, lambda: table.row_count == 4, "sessions listed")
        app.main.query_one("#filter-owner", Input).value = "bob"
        app.main.query_one("#filter-owner", Input).focus()
        await pilot.press("enter")
        await until(pilot, lambda: table.row_count == 1, "only Bob's session")


async def test_tapping_a_card_at_a_charger_prefills_the_new_card() -> None:
    backend = FakeBackend()
    backend.ops["cards.learn"] = {"op": "cards.learn", "admin": True, "allowed": True}
    backend.answers["cards.learn"] = {
        "captured": True,
        "charger": "CP2",
        "card": "04112233",
        "id_tag": "04112233",
        "enrolled": None,
        "problem": None,
    }
    app = app_on(backend)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("4")
        await pilot.pause()
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, ChargerPicker), "which charger")
        await pilot.press("down", "enter")  # CP2 (CP1, CP2, CP3 are online)
        await until(pilot, lambda: isinstance(app.screen, FormDialog), "the new card form")
        form = app.screen
        assert isinstance(form, FormDialog)
        assert form.query_one("#field-card", Input).value == "04112233"
        assert "Read at CP2" in form.body_text
    assert ("cards.learn", {"charger": "CP2", "timeout": 60.0}) in backend.calls
