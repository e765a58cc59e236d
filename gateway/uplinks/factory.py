"""Config -> uplinks: the table of formats, and each uplink's lane in the buffer.

`citygw` uplinks are MQTT (`gateway.uplinks.mqtt.Uplink`, the hub's machinery); the other
formats are a `Destination` (`gateway.uplinks.destination`) driven by `HttpUplink`. A format's
module is imported when an uplink uses it (its HTTP client costs RSS a gateway without it does
not pay); a format whose module this build lacks is an error naming the uplink.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from gateway.config import Config, UplinkSection
from gateway.store.lanes import DEFAULT_LANE, LaneSpec
from gateway.store.stats import LaneStats
from gateway.store.worker import AsyncBuffer
from gateway.uplinks.destination import Destination

if TYPE_CHECKING:  # imported in build(): they import gateway.agent, which imports this
    from gateway.uplinks.http import HttpUplink
    from gateway.uplinks.mqtt import Uplink

DESTINATIONS: dict[str, str] = {
    "sensorthings": "gateway.uplinks.sensorthings",
    "sensor.community": "gateway.uplinks.sensor_community",
}
"""`format` -> the module whose `destination(section, *, gateway_id)` builds its Destination."""


class FormatUnavailable(RuntimeError):
    """An uplink names a format this build cannot send."""


def lane_specs(config: Config) -> list[LaneSpec]:
    """Each uplink's lane: the hub's first, for the owners it carries."""
    return [LaneSpec(DEFAULT_LANE, frozenset(config.hub_owners()))] + [
        LaneSpec(
            section.name,
            frozenset(section.owners),
            max_backlog=section.max_backlog_readings,
            when_full=section.when_full,
        )
        for section in config.uplinks
    ]


def destination(section: UplinkSection, *, gateway_id: str) -> Destination:
    """The Destination of a non-MQTT uplink (FormatUnavailable if this build lacks it)."""
    module_name = DESTINATIONS.get(section.format)
    try:
        if module_name is None:
            raise ModuleNotFoundError(section.format)
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        raise FormatUnavailable(
            f"uplinks {section.name}: format {section.format!r} is not available in this build"
        ) from None
    built: Destination = module.destination(section, gateway_id=gateway_id)
    return built


def build(
    section: UplinkSection,
    *,
    gateway_id: str,
    buffer: AsyncBuffer,
    version: str,
    started_ms: int,
    before_flush: Callable[[], Awaitable[object]] | None = None,
) -> Uplink | HttpUplink:
    """The uplink for a `[[uplinks]]` record, on its own lane."""
    from gateway.uplinks.http import HttpUplink
    from gateway.uplinks.mqtt import Uplink

    if section.format == "citygw":
        return Uplink(
            section.hub_settings(gateway_id),
            gateway_id=gateway_id,
            buffer=buffer,
            version=version,
            started_ms=started_ms,
            wire_format=section.wire_format,
            before_flush=before_flush,
            lane=section.name,
        )
    return HttpUplink(
        section,
        gateway_id=gateway_id,
        buffer=buffer,
        destination=destination(section, gateway_id=gateway_id),
        before_flush=before_flush,
    )


def describe(uplink: Uplink | HttpUplink, lane: LaneStats | None, now_ms: int) -> dict[str, Any]:
    """One uplink as the status and metrics show it (`lane`: its `LaneStats`, or None)."""
    stats = uplink.stats
    oldest = None if lane is None else lane.oldest_ts_ms
    return {
        "connected": stats.connected,
        "backlog": 0 if lane is None else lane.backlog,
        "oldest_unsent_age_s": None if oldest is None else round((now_ms - oldest) / 1000, 1),
        "sent": stats.readings_out,
        "dropped": 0 if lane is None else lane.dropped,
        "last_error": stats.last_error,
        "refused": stats.refused,
    }
