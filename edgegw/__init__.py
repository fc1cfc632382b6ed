"""edgegw: on-premise EV-charging edge gateway."""

__version__ = "0.1.0"
