"""What the chargers' OCPP traffic means, read once.

- :mod:`~edgegw.ocpp.events`: typed, frozen, version-neutral events (a connector's status, a
  session started or stopped, what was measured, how a card was answered, a charger booted).
- :mod:`~edgegw.ocpp.interpret`: the one reading of an exchanged OCPP 1.6 call into those events
  (OCPP 2.0.1 adds a second interpreter, not a second reading in every part).
- :mod:`~edgegw.ocpp.hub`: hands each event to the daemon's fixed set of subscribers.

Outside :mod:`edgegw.proxy`, no other code reads raw charger payloads.
"""
