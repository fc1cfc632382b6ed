"""The live picture of the site (see :mod:`edgegw.live.state`), and the typed snapshot of it the
daemon, MQTT and the TUI share (:mod:`edgegw.live.snapshot`, importable on its own)."""
