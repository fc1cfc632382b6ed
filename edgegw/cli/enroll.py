"""``edgegw cards enroll`` and ``edgegw cards learn``: add cards by tapping them.

``enroll`` reads cards on a USB PC/SC reader at the installer's laptop (:mod:`edgegw.readers.pcsc`);
``learn`` captures the next card tapped at a charger, as that charger reports it, through the
daemon (:mod:`edgegw.control.learn_ops`). Both add the card with the ``cards.add`` op, through
the daemon when it runs and on the store directly otherwise (:func:`edgegw.cli.cards.backend`),
and show how every charger of the site will report the card, so a mismatch between what a
charger sends and what was enrolled is visible at once.

Prompts and progress go to stderr; stdout carries only results (one JSON document with
``--json``). Exit codes are those of :mod:`edgegw.cli.output`: 0 when the card was added (in
``--bulk``: when the session ended normally), 1 when nothing was added (no card in time, a card
that cannot be enrolled, an enrolled one, a reader problem), 4 when ``learn`` finds no daemon.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Final

import typer

from edgegw.auth.idtags import (
    CardId,
    CardIdError,
    IdTagFormat,
    UnrepresentableError,
    is_lossless,
    parse_card_id,
    render,
)
from edgegw.cli.backend import Backend, op_errors
from edgegw.cli.cards import (
    ChargersOption,
    ExpiryOption,
    LabelOption,
    OwnerOption,
    backend,
    cards_app,
)
from edgegw.cli.completion import complete_charger
from edgegw.cli.output import (
    DEFAULT_CONFIG_PATH,
    EXIT_DAEMON_DOWN,
    EXIT_FAILURE,
    EXIT_USAGE,
    ConfigOption,
    JsonOption,
    control_client,
    emit,
    fail,
    load_config_or_fail,
    note,
)
from edgegw.config import Config
from edgegw.control.client import (
    ControlClientError,
    DaemonNotRunning,
    PermissionDenied,
    RemoteError,
)
from edgegw.control.protocol import ControlError, ErrorCode
from edgegw.readers.pcsc import (
    CardRead,
    CardRemoved,
    CardTimeout,
    CardUnreadable,
    NoReader,
    PcscReaders,
    ReaderError,
    ReadFailed,
    SeveralReaders,
    resolve_reader,
)

FORMAT_NAMES: Final[Mapping[IdTagFormat, str]] = MappingProxyType(
    {
        IdTagFormat.HEX: "hex",
        IdTagFormat.HEX_LOWER: "lowercase hex",
        IdTagFormat.HEX_REVERSED: "reversed hex",
        IdTagFormat.DEC_LE: "decimal, little-endian",
        IdTagFormat.DEC_BE: "decimal, big-endian",
        IdTagFormat.HEX_7: "hex in a 7-byte field",
        IdTagFormat.HEX_6: "hex in a 6-byte field",
        IdTagFormat.HEX_4: "hex, first 4 bytes",
        IdTagFormat.HEX_CL1: "hex anticollision frame",
        IdTagFormat.HEX_NOPAD: "hex without leading zeros",
    }
)
"""How the CLI names each idTag format for people."""

COMMON_FORMATS: Final = (
    IdTagFormat.HEX,
    IdTagFormat.HEX_REVERSED,
    IdTagFormat.DEC_LE,
    IdTagFormat.DEC_BE,
)
"""Shown when no charger is configured yet."""

_LINGER_S: Final = 2.0  # a card still on the reader this long after its read gets a reminder
_BULK_WAIT: Final = 0.0  # bulk enrolment does not wait for chargers' lists after each card
_SINGLE_WAIT: Final = 3.0

ReaderOption = Annotated[
    str | None,
    typer.Option(
        "--reader",
        "-r",
        help="Reader number (as --list-readers shows) or (part of) its name; asked when "
        "several are connected.",
    ),
]


# ------------------------------------------------------------------------------ results


@dataclass(slots=True)
class Enrolment:
    """What happened to one card: ``added``, ``already_enrolled``, ``refused``, ``unreadable``."""

    action: str
    uid: str | None = None
    card: str | None = None
    reason: str | None = None
    reader: str | None = None
    record: dict[str, Any] | None = None
    variants: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    local_lists: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "uid": self.uid,
            "card": self.card,
            "reason": self.reason,
            "reader": self.reader,
            "record": self.record,
            "variants": self.variants,
            "warnings": self.warnings,
            "local_lists": self.local_lists,
        }


@dataclass(frozen=True, slots=True)
class CardDetails:
    """What the installer gave for the cards being enrolled (``cards.add`` arguments)."""

    owner: str | None
    label: str | None
    expiry: str | None
    chargers: list[str] | None

    def args(self, card: CardId, number: int, wait: float) -> dict[str, Any]:
        label = self.label.replace("{n}", str(number)) if self.label else self.label
        return {
            "card": card.canonical,
            "format": _format_arg(card),
            "owner": self.owner,
            "label": label,
            "expiry": self.expiry,
            "chargers": self.chargers or None,
            "wait": wait,
        }


# ------------------------------------------------------------------------------ enroll


@cards_app.command("enroll")
def enroll(
    *,
    reader: ReaderOption = None,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", min=1, max=3600, help="Seconds to wait for a card (with --bulk: each)."
        ),
    ] = 30.0,
    bulk: Annotated[
        bool,
        typer.Option(
            "--bulk",
            help="Tap many cards in a row; ends after --timeout without a card, or on Ctrl-C.",
        ),
    ] = False,
    owner: OwnerOption = None,
    label: LabelOption = None,
    expiry: ExpiryOption = None,
    chargers: ChargersOption = None,
    list_readers: Annotated[
        bool, typer.Option("--list-readers", help="List the connected readers and stop.")
    ] = False,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    as_json: JsonOption = False,
) -> None:
    """Add cards by tapping them on a USB card reader (PC/SC, e.g. an ACR122U).

    Shows each card's UID and how every charger of the site will report it. With --bulk, tap
    the cards one after another; each is added once, however long it stays on the reader. In
    --label, {n} numbers the cards added in the session: 1, 2, 3...
    """
    cfg = None if list_readers else load_config_or_fail(config, json_mode=as_json)
    try:
        pcsc = PcscReaders()
    except ReaderError as exc:
        fail(str(exc), EXIT_FAILURE, exc.hint, json_mode=as_json)
    with pcsc:
        if cfg is None:
            _list_readers(pcsc, as_json)
            return
        chosen = _choose_reader(pcsc, reader, as_json)
        with backend(config, as_json) as cards, op_errors(as_json):
            session = _Session(
                pcsc,
                chosen,
                timeout,
                cards,
                cfg,
                CardDetails(owner, label, expiry, chargers),
                as_json,
            )
            if bulk:
                session.bulk()
            else:
                session.single()


def _list_readers(pcsc: PcscReaders, as_json: bool) -> None:
    try:
        readers = pcsc.readers()
    except ReaderError as exc:
        fail(str(exc), EXIT_FAILURE, exc.hint, json_mode=as_json)
    if not readers:
        fail("no card reader is connected", EXIT_FAILURE, NoReader.hint, json_mode=as_json)
    emit(
        {"ok": True, "readers": readers},
        as_json,
        lambda r: "\n".join(f"{i}) {name}" for i, name in enumerate(r["readers"], 1)),
    )


def _choose_reader(pcsc: PcscReaders, choice: str | None, as_json: bool) -> str:
    """The reader to use: the one given, the only one, or the one the installer picks."""
    try:
        readers = pcsc.readers()
        return resolve_reader(readers, choice)
    except SeveralReaders as exc:
        if as_json:
            fail(str(exc), EXIT_FAILURE, exc.hint, json_mode=True)
        several = exc
    except ReaderError as exc:
        fail(str(exc), EXIT_FAILURE, exc.hint, json_mode=as_json)
    note("Several card readers are connected:")
    for number, name in enumerate(several.readers, 1):
        note(f"  {number}) {name}")
    try:
        answer = typer.prompt("Which one (number or name)", err=True)
    except typer.Abort:
        note("")  # end the prompt's line
        fail(str(several), EXIT_FAILURE, several.hint)
    try:
        return resolve_reader(several.readers, answer)
    except ReaderError as exc:
        fail(str(exc), EXIT_FAILURE, exc.hint)


@dataclass(frozen=True, slots=True)
class _Session:
    """One ``enroll`` run on one reader."""

    pcsc: PcscReaders
    reader: str
    timeout: float
    cards: Backend
    cfg: Config
    details: CardDetails
    as_json: bool

    def single(self) -> None:
        note(f"Tap the card on {self.reader} (waiting up to {self.timeout:g} s)...")
        try:
            read = self.pcsc.next_card(self.reader, self.timeout)
        except ReaderError as exc:
            fail(str(exc), EXIT_FAILURE, exc.hint, json_mode=self.as_json)
        except KeyboardInterrupt:
            fail("stopped before a card was read", EXIT_FAILURE, json_mode=self.as_json)
        result = self.enrol(read, 1, _SINGLE_WAIT)
        emit(
            {"ok": result.action == "added", "source": self.cards.source, **result.to_json()},
            self.as_json,
            lambda _: render_enrolment(result),
        )
        if result.action != "added":
            raise typer.Exit(EXIT_FAILURE)

    def bulk(self) -> None:
        note(
            f"Tap the cards on {self.reader} one after another; each is added when its UID "
            f"shows. The session ends after {self.timeout:g} s without a card, or with Ctrl-C."
        )
        results: list[Enrolment] = []
        ended, error = "timeout", None
        try:
            while True:
                try:
                    read = self.pcsc.next_card(self.reader, self.timeout)
                except CardTimeout:
                    break
                except (CardRemoved, CardUnreadable, ReadFailed) as exc:
                    note(f"  {exc}; {exc.hint or 'tap it again'}")
                    results.append(Enrolment("unreadable", reason=str(exc), reader=self.reader))
                else:
                    added = sum(r.action == "added" for r in results)
                    result = self.enrol(read, added + 1, _BULK_WAIT)
                    results.append(result)
                    if not self.as_json:
                        typer.echo(f"[{len(results)}] " + render_enrolment(result))
                if not self._removed():
                    ended = "left_on_reader"
                    break
        except KeyboardInterrupt:
            ended = "interrupted"
        except ReaderError as exc:
            ended, error = "error", exc
        summary = {
            "ok": error is None,
            "source": self.cards.source,
            "reader": self.reader,
            "ended": ended,
            "error": None if error is None else str(error),
            "added": sum(r.action == "added" for r in results),
            "already_enrolled": sum(r.action == "already_enrolled" for r in results),
            "refused": sum(r.action == "refused" for r in results),
            "unreadable": sum(r.action == "unreadable" for r in results),
            "cards": [r.to_json() for r in results],
        }
        emit(summary, self.as_json, _render_summary)
        if error is not None:
            fail(str(error), EXIT_FAILURE, error.hint)

    def _removed(self) -> bool:
        """Wait for the card to leave the reader, so that it is not counted twice."""
        if self.pcsc.wait_for_removal(self.reader, min(_LINGER_S, self.timeout)):
            return True
        note("  take the card away to tap the next one")
        return self.pcsc.wait_for_removal(self.reader, self.timeout)

    def enrol(self, read: CardRead, number: int, wait: float) -> Enrolment:
        """Add the card read on the reader, or say why it was not added."""
        uid = read.uid.hex().upper()
        try:
            card = parse_card_id(uid, IdTagFormat.HEX, allow_random=True)
        except CardIdError as exc:
            return Enrolment("refused", uid=uid, reason=str(exc), reader=read.reader)
        result = enrol(card, self.cards, self.cfg, self.details.args(card, number, wait))
        result.uid, result.reader = uid, read.reader
        return result


def enrol(card: CardId, cards: Backend, cfg: Config, args: dict[str, Any]) -> Enrolment:
    """Add ``card`` with ``cards.add`` (``args``); an enrolled card or a refused one is not an
    error here. Other failures of the backend (daemon gone, store unusable) propagate.
    """
    if card.is_random_uid:
        return Enrolment(
            "refused",
            card=card.canonical,
            reason=f"{card.canonical} is a random UID (4 bytes starting with 08): the card "
            "shows a new UID on every tap, so no charger could recognise it",
        )
    try:
        added = cards.call("cards.add", **args)
    except (ControlError, RemoteError) as exc:
        code = exc.code
        if code == ErrorCode.CONFLICT:
            result = Enrolment("already_enrolled", card=card.canonical, reason=exc.message)
            with contextlib.suppress(ControlError, RemoteError):
                result.record = cards.call(
                    "cards.show", card=card.canonical, format=_format_arg(card)
                )
            result.variants = variant_lines(card, cards, cfg)
            return result
        if code == ErrorCode.BAD_ARGS:
            return Enrolment("refused", card=card.canonical, reason=exc.message)
        raise
    result = Enrolment(
        "added",
        card=card.canonical,
        record=added.get("card"),
        warnings=list(added.get("warnings", [])),
        local_lists=list(added.get("local_lists", [])),
    )
    result.variants = variant_lines(card, cards, cfg)
    return result


# ------------------------------------------------------------------------------ variants


def variant_lines(card: CardId, cards: Backend, cfg: Config) -> list[dict[str, Any]]:
    """How the site's chargers will report ``card``: one entry per idTag format in use.

    Each charger's format is the configured one, else the one the gateway detected, else
    unknown (``auto``: the gateway recognises the card in any format). With no charger
    configured, the common forms are listed.
    """
    formats: dict[str, str] = {}
    with contextlib.suppress(ControlError, RemoteError):
        shown = cards.call("cards.show", card=card.canonical, format=_format_arg(card))
        for entry in shown.get("at_chargers", []):
            formats[entry["charger"]] = entry["format"]
    for charger in cfg.chargers:  # not enrolled (random, refused): the configuration alone
        formats.setdefault(charger.id, charger.idtag_format or IdTagFormat.AUTO.value)
    groups: dict[IdTagFormat, list[str]] = {}
    for charger_id, fmt in formats.items():
        groups.setdefault(IdTagFormat(fmt), []).append(charger_id)
    if not groups:
        groups = {fmt: [] for fmt in COMMON_FORMATS}
    models = _model_names(cfg)
    lines: list[dict[str, Any]] = []
    for fmt in sorted(groups, key=lambda f: (f is IdTagFormat.AUTO, list(IdTagFormat).index(f))):
        ids = groups[fmt]
        line: dict[str, Any] = {
            "format": fmt.value,
            "name": FORMAT_NAMES.get(fmt, "format not known yet"),
            "chargers": ids,
            "models": sorted({models[c] for c in ids if c in models}),
            "idtag": None,
            "lossless": True,
        }
        if fmt is not IdTagFormat.AUTO:
            with contextlib.suppress(UnrepresentableError):
                line["idtag"] = render(card, fmt)
            line["lossless"] = is_lossless(card, fmt)
        lines.append(line)
    return lines


def _format_arg(card: CardId) -> str:
    return "hex" if card.is_uid else "token"


def _model_names(cfg: Config) -> dict[str, str]:
    """Charger id → model name, for chargers whose model is configured."""
    wanted = [c for c in cfg.chargers if c.model]
    if not wanted:
        return {}
    from edgegw.hardware_catalogue import HardwareCatalogue, HardwareError  # noqa: PLC0415

    try:
        models = HardwareCatalogue.for_config(cfg).charger_models()
    except HardwareError:
        return {}
    return {c.id: models[c.model].name for c in wanted if c.model in models}


# ------------------------------------------------------------------------------ learn


@cards_app.command("learn")
def learn(
    *,
    charger: Annotated[
        str,
        typer.Option(
            "--charger",
            help="The charger the card will be tapped at.",
            autocompletion=complete_charger,
        ),
    ],
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, max=600, help="Seconds to wait for the tap.")
    ] = 120.0,
    owner: OwnerOption = None,
    label: LabelOption = None,
    expiry: ExpiryOption = None,
    only_here: Annotated[
        bool, typer.Option("--only-here", help="The card works on this charger only.")
    ] = False,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    as_json: JsonOption = False,
) -> None:
    """Add the next card tapped at a charger, as that charger reports it (needs the daemon).

    The charger answers the tap as usual (a card not enrolled yet is refused); tap it again
    once it is added.
    """
    cfg = load_config_or_fail(config, json_mode=as_json)
    with _learn_errors(as_json, charger):
        client = control_client(cfg, timeout=timeout + 15)
        note(f"Tap the card at {charger} now (waiting up to {timeout:g} s)...")
        captured = client.call("cards.learn", charger=charger, timeout=timeout)
    if not captured.get("captured"):
        fail(
            f"no card was tapped at {charger} within {timeout:g} s",
            EXIT_FAILURE,
            "tap the card on the charger's reader after starting the command; give more time "
            "with --timeout",
            json_mode=as_json,
        )
    details = CardDetails(owner, label, expiry, [charger] if only_here else None)
    result = _learnt(captured, config, cfg, details, as_json)
    emit(
        {"ok": result.action == "added", "source": "daemon", "captured": captured}
        | result.to_json(),
        as_json,
        lambda _: _render_learnt(captured) + "\n" + render_enrolment(result),
    )
    if result.action != "added":
        raise typer.Exit(EXIT_FAILURE)


def _learnt(
    captured: dict[str, Any],
    config_path: Path,
    cfg: Config,
    details: CardDetails,
    as_json: bool,
) -> Enrolment:
    text = captured.get("card")
    if text is None or captured.get("problem"):
        shown = text or captured.get("id_tag")
        return Enrolment("refused", card=shown, reason=captured.get("problem"))
    card = CardId.from_token(text) if captured.get("kind") == "token" else CardId.from_idtag(text)
    with backend(config_path, as_json) as cards, op_errors(as_json):
        return enrol(card, cards, cfg, details.args(card, 1, _SINGLE_WAIT))


@contextlib.contextmanager
def _learn_errors(as_json: bool, charger: str) -> Iterator[None]:
    try:
        yield
    except DaemonNotRunning as exc:
        fail(
            f"{exc}. `cards learn` needs the daemon: it is what sees {charger}'s card taps",
            EXIT_DAEMON_DOWN,
            "start the daemon, or enrol the card on a USB reader with `edgegw cards enroll`",
            json_mode=as_json,
        )
    except PermissionDenied as exc:
        fail(exc.message, EXIT_FAILURE, "run the command with sudo", json_mode=as_json)
    except RemoteError as exc:
        code = EXIT_USAGE if exc.code == ErrorCode.BAD_ARGS else EXIT_FAILURE
        fail(exc.message, code, json_mode=as_json)
    except ControlClientError as exc:
        fail(str(exc), EXIT_FAILURE, json_mode=as_json)
    except KeyboardInterrupt:
        fail("stopped before a card was tapped", EXIT_FAILURE, json_mode=as_json)


# ------------------------------------------------------------------------------ rendering


def render_enrolment(result: Enrolment) -> str:
    """A card's outcome and how chargers will report it, for people."""
    card = result.card or result.uid or "?"
    record = result.record or {}
    who = ", ".join(x for x in (record.get("owner"), record.get("label")) if x)
    head = {
        "added": f"{card} added" + (f" ({who})" if who else ""),
        "already_enrolled": f"{card} is already enrolled" + (f" ({who})" if who else ""),
        "refused": f"{card}: not added: {result.reason}",
        "unreadable": f"not read: {result.reason}",
    }[result.action]
    lines = [head]
    if result.variants and result.action in ("added", "already_enrolled"):
        lines.append("  chargers will report it as:")
        lines += [f"    {_variant_text(v)}" for v in result.variants]
    lines += [f"  warning: {w}" for w in result.warnings]
    for report in result.local_lists:
        lines.append(f"  {report['charger']} local list: {report['state']} {report['detail']}")
    return "\n".join(lines)


def _variant_text(entry: dict[str, Any]) -> str:
    chargers = ", ".join(entry["chargers"]) or "a charger"
    models = f" ({', '.join(entry['models'])})" if entry["models"] else ""
    if entry["format"] == IdTagFormat.AUTO.value:
        return f"{chargers}{models} (format not known yet): recognised in any format"
    if entry["idtag"] is None:
        return f"{chargers}{models} ({entry['name']}): cannot be written in 20 characters"
    lossy = "" if entry["lossless"] else "  (part of the UID: other cards may look the same)"
    if not entry["chargers"]:
        return f"{entry['name']}: {entry['idtag']}"
    return f"{chargers}{models} ({entry['name']}): {entry['idtag']}{lossy}"


def _render_summary(summary: dict[str, Any]) -> str:
    why = {
        "timeout": "no further card",
        "interrupted": "stopped",
        "left_on_reader": "the last card stayed on the reader",
        "error": "a reader error",
    }[summary["ended"]]
    parts = [f"{summary['added']} added"]
    for key, text in (
        ("already_enrolled", "already enrolled"),
        ("refused", "refused"),
        ("unreadable", "not read"),
    ):
        if summary[key]:
            parts.append(f"{summary[key]} {text}")
    return f"Enrolment ended ({why}): " + ", ".join(parts) + "."


def _render_learnt(captured: dict[str, Any]) -> str:
    answered = f", answered {captured['answered']}" if captured.get("answered") else ""
    text = f"{captured['charger']} reported {captured['id_tag']!r} ({captured['action']}{answered})"
    source = captured.get("format_source")
    fmt = captured.get("format")
    if captured.get("card") is not None and fmt:
        text += f", read as {fmt} ({source})"
    if source == "assumed" and captured.get("alternatives"):
        others = ", ".join(f"{a['card']} if {a['format']}" for a in captured["alternatives"])
        text += (
            f".\n  {captured['charger']}'s card format is not known; if it is not hex, the card "
            f"is {others}. Set its format to be sure: `edgegw chargers set "
            f"{captured['charger']} --idtag-format FORMAT`"
        )
    return text
