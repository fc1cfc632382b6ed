"""A real pcscd with the vsmartcard vpcd virtual reader, and virtual cards to tap on it."""
