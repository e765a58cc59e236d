"""The `[[uplinks]]` besides the hub: each built for its format, on its own lane of the buffer,
and supervised in its own task, so one that is down, slow or refusing delays no other."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from gateway.agent.supervise import STEP_S, bounded, stop_tasks, supervise
from gateway.config import Config, UplinkSection
from gateway.store.buffer import SqliteBuffer
from gateway.store.stats import LaneStats
from gateway.store.worker import AsyncBuffer
from gateway.uplinks import factory
from gateway.uplinks.mqtt import Uplink

if TYPE_CHECKING:  # imported by the factory only when an HTTP format is configured
    from gateway.agent.alerts import AlertNotice
    from gateway.uplinks.http import HttpUplink

log = logging.getLogger(__name__)


def buffer_for(config: Config) -> AsyncBuffer:
    """The agent's buffer (opened later, on its worker thread), with a lane per uplink."""
    return AsyncBuffer(
        lambda: SqliteBuffer(
            config.data_dir / "buffer.db",
            max_readings=config.buffer.max_readings,
            when_full=config.buffer.when_full,
            synchronous=config.buffer.synchronous,
            owner=config.gateway.owner,
            lanes=factory.lane_specs(config),
        )
    )


class ExtraUplinks:
    """The uplinks of `[[uplinks]]`, by name."""

    def __init__(
        self,
        *,
        buffer: AsyncBuffer,
        gateway_id: str,
        version: str,
        started_ms: int,
        before_flush: Callable[[], Awaitable[object]],
    ) -> None:
        self._buffer = buffer
        self._gateway_id = gateway_id
        self._version = version
        self._started_ms = started_ms
        self._before_flush = before_flush
        self.running: dict[str, Uplink | HttpUplink] = {}
        self.sections: dict[str, UplinkSection] = {}
        self.errors: dict[str, str] = {}  # uplinks that could not be built, and why
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._group: asyncio.TaskGroup | None = None

    def build(self, sections: list[UplinkSection]) -> None:
        """Build the uplinks of `sections` (not started yet)."""
        for section in sections:
            self._build(section)

    def _build(self, section: UplinkSection) -> None:
        self.sections[section.name] = section
        try:
            self.running[section.name] = factory.build(
                section,
                gateway_id=self._gateway_id,
                buffer=self._buffer,
                version=self._version,
                started_ms=self._started_ms,
                before_flush=self._before_flush,
            )
        except (factory.FormatUnavailable, ValueError, OSError) as error:
            self.errors[section.name] = str(error)
            log.error("uplink %s cannot start: %s; its readings stay buffered", section.name, error)

    def start(self, group: asyncio.TaskGroup) -> None:
        """Run every built uplink in `group`."""
        self._group = group
        for name in self.running:
            self._start(name)

    def _start(self, name: str) -> None:
        if self._group is None or name not in self.running:
            return
        uplink = self.running[name]
        self._tasks[name] = self._group.create_task(
            supervise(f"uplink {name}", uplink.run), name=f"uplink-{name}"
        )

    async def remove_changed(self, sections: list[UplinkSection]) -> list[UplinkSection]:
        """Stop the uplinks that `sections` no longer has, or has changed; the sections to
        start (after the buffer has their lanes)."""
        wanted = {section.name: section for section in sections}
        for name in list(self.sections):
            if wanted.get(name) != self.sections[name]:
                await self._stop(name)
        return [section for name, section in wanted.items() if name not in self.sections]

    def add(self, sections: list[UplinkSection]) -> None:
        """Build and start these uplinks (a config push added or changed them)."""
        for section in sections:
            self._build(section)
            self._start(section.name)

    async def _stop(self, name: str) -> None:
        task = self._tasks.pop(name, None)
        uplink = self.running.pop(name, None)
        self.sections.pop(name, None)
        self.errors.pop(name, None)
        if isinstance(uplink, Uplink):
            await uplink.quiesce(timeout_s=STEP_S)  # in-flight batches finish: none sent twice
            await uplink.announce_offline()
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def offer_alert(self, notice: AlertNotice, owner: str) -> None:
        """An alert, at once, to each MQTT uplink that carries `owner` (an HTTP uplink sends it
        with its next batch)."""
        for name, uplink in self.running.items():
            if isinstance(uplink, Uplink) and owner in self.sections[name].owners:
                uplink.alerts.offer(notice)

    def notify(self, committed: int) -> None:
        """The ingest committed readings."""
        for uplink in self.running.values():
            uplink.notify(committed)

    async def drain(self, timeout_s: float, hub: Uplink) -> int:
        """The hub and each uplink deliver what is waiting, at the same time; the most that
        remains for one of them."""
        uplinks = [hub, *self.running.values()]
        left = await asyncio.gather(*(u.drain(timeout_s) for u in uplinks))
        return max(left)

    async def stop(self) -> None:
        """Say "offline" where there is a will to replace, then end every task (bounded)."""
        for uplink in self.running.values():
            if isinstance(uplink, Uplink):
                await bounded("offline", uplink.announce_offline(), timeout_s=STEP_S)
        await stop_tasks("uplinks", list(self._tasks.values()), timeout_s=2 * STEP_S)

    def snapshot(
        self, lanes: dict[str, LaneStats], now_ms: int, *, hub: Uplink
    ) -> dict[str, dict[str, Any]]:
        """The hub and each uplink as status and metrics show them."""
        out: dict[str, dict[str, Any]] = {"hub": {"format": "citygw"}}
        out["hub"].update(factory.describe(hub, lanes.get("hub"), now_ms))
        for name, section in self.sections.items():
            uplink = self.running.get(name)
            if uplink is None:
                out[name] = {"format": section.format, "connected": False}
                out[name]["last_error"] = self.errors.get(name, "")
                continue
            out[name] = {"format": section.format}
            out[name].update(factory.describe(uplink, lanes.get(name), now_ms))
        return out
