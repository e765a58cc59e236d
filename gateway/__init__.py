"""citygw: the gateway agent on the pole, its wire formats, and the tools around it.

The agent's data path, one package a step: `sources` (serial, BLE) -> `agent` (ingest,
supervision, health) -> `store` (the durable buffer) -> `uplinks` (MQTT delivery) over `wire`
(the formats); `config` is the schema, `remote` the signed config channel, `system` the OS
(systemd, journald, libc, clock). Apart from the agent, never imported by it: `hub` (the city's
side), `nodes` (flashing sensor nodes), `devtools` (simulators, demo, wire bench) and `cli`.
CONTRIBUTING.md draws the map.
"""

__version__ = "0.1.0"
