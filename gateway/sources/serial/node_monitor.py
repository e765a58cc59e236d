"""What a citygw node says besides its readings: sensor status, uptime, interval, acks.

Kept in the serial source's stats (so `citygw status` and `metrics` show it) and logged when a
sensor's status changes (a failing sensor on a pole is news; the same failure every cycle is not).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from drivers import Frame, node
from drivers.base import Measurement

log = logging.getLogger(__name__)


class NodeMonitor:
    """Keeps the latest of what one node reported about itself, in a JSON-ready dict."""

    def __init__(self, source_name: str) -> None:
        self._source = source_name
        self.state: dict[str, Any] = {
            "node_id": None,
            "uptime_s": None,
            "interval_s": None,
            "sensors": {},
            "acks": 0,
            "nacks": 0,
        }

    def observe(self, frames: Sequence[object]) -> None:
        """Take in a slice's frames: reports update the state, acks are counted and logged."""
        for frame in frames:
            if isinstance(frame, node.Report):
                self._report(frame)
            elif isinstance(frame, node.Ack):
                key = "acks" if frame.ok else "nacks"
                self.state[key] += 1
                log.info(
                    "source %s: node %04x %s command %s (seq %d)",
                    self._source,
                    frame.node_id,
                    "acknowledged" if frame.ok else "refused",
                    frame.command,
                    frame.command_seq,
                )

    def per_sensor(self, frame: Frame) -> list[tuple[str, list[Measurement]]]:
        """A frame's measurements grouped by source, `<source>/<sensor>` when the node names
        its sensors."""
        sensors = getattr(frame, "sensors", ())
        if not sensors:
            return [(self._source, list(frame.measurements))]
        grouped: dict[str, list[Measurement]] = {}
        for m, s in zip(frame.measurements, sensors, strict=True):
            grouped.setdefault(f"{self._source}/{s}" if s else self._source, []).append(m)
        return list(grouped.items())

    def _report(self, report: node.Report) -> None:
        self.state.update(
            node_id=report.node_id, uptime_s=report.uptime_s, interval_s=report.interval_s
        )
        sensors: dict[str, str] = self.state["sensors"]
        for sensor, status in report.status:
            if sensors.get(sensor) != status:
                level = logging.INFO if status in ("ok", "asleep") else logging.WARNING
                log.log(
                    level,
                    "source %s: node %04x sensor %s is %s",
                    self._source,
                    report.node_id,
                    sensor,
                    status,
                )
                sensors[sensor] = status
