"""Simulated hardware and measurement tools: sensors on pseudo-terminals, a replayed BLE scanner,
a virtual node, a fleet of agents, the demo and the wire bench. Never imported by the agent."""
