"""citygw gateway agent: sources, durable buffer, uplink and the CLI that wires them."""

__version__ = "0.1.0"
