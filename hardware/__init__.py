"""The device files (meter profiles, charger models), installed as the package edgegw.hardware.

Read them through :class:`edgegw.hardware_catalogue.HardwareCatalogue`, never by path.
"""
