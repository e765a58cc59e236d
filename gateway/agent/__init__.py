"""The agent: the composition root that wires sources, ingest, buffer and uplink, supervises
them and stops them in order; the ingest that stages and commits; health and status."""

from gateway.agent.root import SOURCE_TYPES, Agent, AgentNotRunning, run
from gateway.agent.supervise import AgentAlreadyRunning

__all__ = ["SOURCE_TYPES", "Agent", "AgentAlreadyRunning", "AgentNotRunning", "run"]
