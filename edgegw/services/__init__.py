"""The gateway's use cases, each written once, whatever the transport that asks for it.

The control socket (:mod:`edgegw.control`, the CLI and the TUI) and the MQTT commands
(:mod:`edgegw.telemetry.commands`) are thin adapters over these: they parse a request, call a
service and shape its answer. A service takes narrow dependencies (:mod:`edgegw.services.ports`:
"call a charger", "the chargers configured and connected", "record an event"), never the whole
daemon, and refuses with a :class:`~edgegw.services.errors.ServiceError` that each adapter turns
into its own kind of refusal.

- :mod:`~edgegw.services.charger_actions`: stop a session, unlock, reset, availability;
- :mod:`~edgegw.services.caretaker`: a charger's maximum current, free charging, the temporary
  site limit (kept in the database, put back at start);
- :mod:`~edgegw.services.ports` and :mod:`~edgegw.services.errors`: the narrow dependencies and
  the refusals all services share.

The commissioning run, the cards and the session queries have one transport each (the control
socket, and the CLI on the store when the daemon is stopped); their work is in
:mod:`edgegw.commission`, :mod:`edgegw.control.card_service` and :mod:`edgegw.store.sessions`,
over parts the daemon hands their ops.
"""
