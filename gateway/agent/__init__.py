"""The agent: the composition root that wires sources, ingest, buffer and uplinks, supervises
them and stops them in order; the ingest that stages and commits; health and status.

The root is imported on first use, not with the package: the uplinks use this package's
supervision helpers, and the root imports the uplinks (importing either first must work)."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.agent.root import Agent, AgentNotRunning, run
    from gateway.agent.sources import SOURCE_TYPES
    from gateway.agent.supervise import AgentAlreadyRunning

__all__ = ["SOURCE_TYPES", "Agent", "AgentAlreadyRunning", "AgentNotRunning", "run"]


def __getattr__(name: str) -> Any:  # noqa: ANN401 - the names of __all__, whatever their type
    if name == "AgentAlreadyRunning":
        from gateway.agent import supervise

        return supervise.AgentAlreadyRunning
    if name == "SOURCE_TYPES":
        from gateway.agent import sources

        return sources.SOURCE_TYPES
    if name in __all__:
        from gateway.agent import root

        return getattr(root, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
