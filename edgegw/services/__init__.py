"""The gateway's use cases, each written once, whatever the transport that asks for it.

The control socket (:mod:`edgegw.control`, the CLI and the TUI) and the MQTT commands
(:mod:`edgegw.telemetry.commands`) are thin adapters over these: they parse a request, call a
service and shape its answer. A service takes narrow dependencies (:mod:`edgegw.services.ports`:
"call a charger", "the chargers configured and connected", "record an event"), never the whole
daemon, and refuses with a :class:`~edgegw.services.errors.ServiceError` that each adapter turns
into its own kind of refusal.

- :mod:`~edgegw.services.charger_actions`: stop a session, unlock, reset, availability;
- :mod:`~edgegw.services.site_limits`: the caretaker's temporary site limit.
"""
