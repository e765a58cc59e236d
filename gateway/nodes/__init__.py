"""Sensor-node tools: check a node.json, write MicroPython images, flash firmware over a board's
raw REPL. Run on a technician's laptop or a gateway; never imported by the agent."""
