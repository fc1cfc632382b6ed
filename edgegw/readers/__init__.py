"""Card readers used to enrol cards by tapping them (PC/SC over pyscard)."""
