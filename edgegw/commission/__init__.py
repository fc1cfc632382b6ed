"""Commissioning a charger on site: probing it, configuring its meter values, the checklist.

The control ops that an installer runs (``chargers.probe``, ``chargers.configure``,
``commission.run``) are in :mod:`edgegw.control.commission_ops`; the work is here:

- :mod:`~edgegw.commission.observer`: what the chargers send, kept so a step can look back at
  it or wait for it;
- :mod:`~edgegw.commission.probe`: a charger's configuration keys read into what the gateway
  cares about, and which ``hardware/chargers/`` profile fits;
- :mod:`~edgegw.commission.configure`: setting the meter values the gateway needs;
- :mod:`~edgegw.commission.run`, :mod:`~edgegw.commission.checklist`,
  :mod:`~edgegw.commission.profilecheck`, :mod:`~edgegw.commission.cardcheck`: one run of the
  checklist and its steps.
"""
