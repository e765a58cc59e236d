"""Sources own the I/O to sensors (ports, scanners, reconnects, duty cycles) and hand what
their driver decoded to the ingest; one subpackage per transport, no uplink knowledge."""
