"""The composition root: builds buffer, sources, ingest and uplink from a Config and runs them.

One TaskGroup; each component supervised with its own restart policy; an ordered shutdown on
SIGTERM/SIGINT: sources stop, staged readings are committed, the hub is told "offline".
Under systemd (Type=notify) it reports READY/STOPPING/STATUS and pings the watchdog from the loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from gateway import __version__
from gateway.agent.alerts import AlertEngine, AlertNotice
from gateway.agent.health import (
    publish_metrics_every,
    rss_bytes,
    serve_status,
    status_socket_address,
)
from gateway.agent.ingest import Ingest
from gateway.agent.sources import Source, make_source, source_info
from gateway.agent.supervise import (
    STEP_S,
    STOP_BOUND_S,
    bounded,
    data_dir_lock,
    handle_stop_signals,
    stop_tasks,
    supervise,
)
from gateway.agent.uplinks import ExtraUplinks, buffer_for
from gateway.config import Config, SourceConfig
from gateway.system import libc, systemd
from gateway.system.clock import WallClock
from gateway.uplinks.factory import lane_specs
from gateway.uplinks.mqtt import Uplink
from gateway.wire.register import encode_register, register_body

if TYPE_CHECKING:  # loaded on use: remote config (PyNaCl) and BLE (bleak, drivers)
    from gateway.remote.channel import RemoteConfig
    from gateway.remote.policy import Changes
    from gateway.sources.ble.scanner import ScannerFactory

log = logging.getLogger(__name__)


class AgentNotRunning(RuntimeError):
    """A change was asked of an agent whose `run` has not started or has ended."""


class Agent:
    """Runs one gateway. With `[remote_config]` in the local file, signed pushes may replace
    its config while it runs (`apply`): only the affected sources or the uplink restart."""

    def __init__(
        self,
        config: Config,
        *,
        document: dict[str, Any] | None = None,
        ble_scanner_factory: ScannerFactory | None = None,
    ) -> None:
        self.local_config = config
        self.remote: RemoteConfig | None = None
        boot = None
        if config.remote_config.enabled:
            from gateway.remote.boot import config_at_boot
            from gateway.remote.channel import RemoteConfig

            if document is None:
                raise ValueError("remote config needs the local config document")
            boot = config_at_boot(document, config)
            config = boot.config
        self.config = config
        self.started_ms = int(time.time() * 1000)
        self._started_monotonic = time.monotonic()
        self._ble_scanner_factory = ble_scanner_factory
        buffer_cfg = config.buffer
        self.buffer = buffer_for(config)
        if boot is not None and document is not None:
            self.remote = RemoteConfig(
                local_document=document,
                local=self.local_config,
                boot=boot,
                applier=self,
                publish_state=lambda payload: self.uplink.publish_config_state(payload),
            )
        self.uplink = self._make_uplink(config)
        self.extras = ExtraUplinks(
            buffer=self.buffer,
            gateway_id=config.gateway.id,
            version=__version__,
            started_ms=self.started_ms,
            before_flush=lambda: self.ingest.commit(),
        )
        self.extras.build(config.uplinks)
        self.ingest = Ingest(
            self.buffer,
            commit_interval_s=buffer_cfg.commit_interval_ms / 1000,
            commit_max=buffer_cfg.commit_max_readings,
            staging_max=max(10_000, 2 * buffer_cfg.commit_max_readings),
            on_committed=self._committed,
            alerts=AlertEngine(config.alerts),
            on_alert=self._alert,
        )
        self.ingest.set_owners(config.source_owners(), config.gateway.owner)
        self.clock = WallClock()
        self.sources = {s.name: self._make_source(s) for s in config.sources}
        self._group: asyncio.TaskGroup | None = None
        self._source_tasks: dict[str, asyncio.Task[None]] = {}
        self._uplink_task: asyncio.Task[None] | None = None
        self._metrics_task: asyncio.Task[None] | None = None

    def _committed(self, count: int) -> None:
        self.uplink.notify(count)
        self.extras.notify(count)

    def _alert(self, notice: AlertNotice) -> None:
        """An alert goes at once to every MQTT uplink that carries its source's owner."""
        owner = self.ingest.owner(notice.event.source)
        if owner in self.config.hub_owners():
            self.uplink.alerts.offer(notice)
        self.extras.offer_alert(notice, owner)

    def _make_uplink(self, config: Config) -> Uplink:
        uplink = Uplink(
            config.hub,
            gateway_id=config.gateway.id,
            buffer=self.buffer,
            version=__version__,
            started_ms=self.started_ms,
            wire_format=config.hub.wire_format,
            config_channel=self.remote,
            before_flush=lambda: self.ingest.commit(),
        )
        uplink.register = encode_register(register_body(config))
        return uplink

    def _make_source(self, config: SourceConfig) -> Source:
        return make_source(config, clock=self.clock, ble_scanner_factory=self._ble_scanner_factory)

    # --- what remote config calls (gateway.remote_config.Applier) ----------------------------

    async def hub_reached(self) -> None:
        """Returns once the uplink has reached the hub (remote config's rollback waits on it)."""
        await self.uplink.reached.wait()

    def hub_last_error(self) -> str:
        """The uplink's last connection error, for remote config's state report."""
        return self.uplink.stats.last_error

    async def apply(self, config: Config, changes: Changes) -> None:
        """Switch to `config` while running. Sources that went away or changed stop first
        (what they read is staged already), the buffer's lanes follow the new owners and
        uplinks before any uplink starts, the hub's uplink finishes its batches in flight
        before it reconnects with new settings (nothing sent twice), new sources start last.
        Buffer settings take effect at the next start."""
        for name in [*changes.sources_removed, *changes.sources_changed]:
            await self._stop_source(name)
        old = self.config
        self.config = config
        if config.alerts != old.alerts:  # rules start afresh
            self.ingest.alerts = AlertEngine(config.alerts) if config.alerts else None
        self.ingest.set_owners(config.source_owners(), config.gateway.owner)
        added = []
        if old.uplinks != config.uplinks or old.routes() != config.routes():
            added = await self.extras.remove_changed(config.uplinks)
            await self.buffer.set_lanes(lane_specs(config))  # routes before any uplink starts
        if changes.hub:
            await self._replace_uplink(old)
        self.extras.add(added)
        new_sources = {s.name: s for s in config.sources}
        for name in [*changes.sources_changed, *changes.sources_added]:
            self.sources[name] = self._make_source(new_sources[name])
            self._start_source(self.sources[name])
        if changes.log_level:
            logging.getLogger().setLevel(config.gateway.log_level.upper())
        if register_body(config) != register_body(old):  # e.g. a record or an owner changed
            await self.uplink.publish_register(encode_register(register_body(config)))

    def _running_group(self) -> asyncio.TaskGroup:
        """The TaskGroup of `run`; components start only inside it."""
        if self._group is None:
            raise AgentNotRunning("the agent is not running: start it with run() first")
        return self._group

    def _start_source(self, source: Source) -> None:
        self._source_tasks[source.name] = self._running_group().create_task(
            supervise(f"source {source.name}", lambda: source.run(self.ingest)),
            name=f"source-{source.name}",
        )

    async def _stop_source(self, name: str) -> None:
        task = self._source_tasks.pop(name, None)
        self.sources.pop(name, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _start_uplink(self) -> None:
        group = self._running_group()
        self._uplink_task = group.create_task(supervise("uplink", self.uplink.run), name="uplink")
        self._metrics_task = group.create_task(
            publish_metrics_every(
                self.config.hub.metrics_interval_s,
                self.snapshot,
                lambda metrics: self.uplink.publish_metrics(metrics),
            ),
            name="metrics",
        )

    async def _replace_uplink(self, old_config: Config) -> None:
        old = self.uplink
        await old.quiesce(timeout_s=min(10.0, old_config.hub.timeout_s))
        hub, was = self.config.hub, old_config.hub
        if (hub.host, hub.port, hub.topic_prefix) != (was.host, was.port, was.topic_prefix):
            await old.announce_offline()  # the old hub would keep "online" forever
        for task in (self._uplink_task, self._metrics_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self.uplink = self._make_uplink(self.config)
        self.uplink.alerts.adopt(old.alerts)  # alerts not yet sent go with the new settings
        self._start_uplink()

    # --- health ------------------------------------------------------------------------------

    async def snapshot(self) -> dict[str, Any]:
        """Health as one JSON-ready dict: the metrics message and `citygw status` show it."""
        stats = await self.buffer.stats()
        now_ms = int(time.time() * 1000)
        rss, peak = rss_bytes()
        silent: dict[str, float] = {}  # judged here, where the agent looks anyway: no timer
        for source in self.sources.values():
            silent |= source.check_silence()
        up = self.uplink.stats  # connected, counters, last_error, refusals, warnings
        snap: dict[str, Any] = {
            "gateway": self.config.gateway.id,
            "version": __version__,
            "uptime_s": round(time.monotonic() - self._started_monotonic, 1),
            "rss_bytes": rss,
            "rss_peak_bytes": peak,
            "clock_synced": self.clock.is_synced(),
            "buffer": {
                "depth": stats.depth + self.ingest.staged,
                "committed": stats.depth,
                "staged": self.ingest.staged,
                "bytes": stats.bytes_on_disk,
                "oldest_unsent_age_s": None
                if stats.oldest_ts_ms is None
                else round((now_ms - stats.oldest_ts_ms) / 1000, 1),
                "dropped": stats.dropped_total + self.ingest.dropped_staging,
                "dropped_by_cause": stats.dropped_by_cause | self.ingest.dropped_by_cause(),
                "write_errors": self.ingest.write_errors,
            },
            "uplink": up.as_dict(),
            "alerts": {
                **(self.ingest.alerts or AlertEngine([])).stats(),
                **self.uplink.alerts.stats(),
            },
            "uplinks": self.extras.snapshot(stats.lanes, now_ms, hub=self.uplink),
            "sources": {
                s.name: {**source_info(s), **s.stats.as_dict()} for s in self.sources.values()
            },
            "silent": silent,  # "<source>[/<device or meter>]" -> seconds nothing was heard
        }
        if self.remote is not None:
            snap["config_version"] = self.remote.version
        snap["warnings"] = self.config.hub.warnings()
        return snap

    async def status_line(self) -> str:
        """One line for `systemctl status` (sd_notify STATUS=)."""
        snap = await self.snapshot()
        buffer, uplink = snap["buffer"], snap["uplink"]
        age = buffer["oldest_unsent_age_s"]
        silent = f", {len(snap['silent'])} SILENT" if snap["silent"] else ""
        return (
            f"{len(self.sources)} sources{silent}, uplink "
            f"{'connected' if uplink['connected'] else 'disconnected'}, "
            f"{buffer['depth']} readings waiting"
            f"{'' if age is None else f' (oldest {age:.0f} s)'}, {buffer['dropped']} dropped"
        )

    # --- running -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run every component until `stop` is set, then shut down in order."""
        config = self.config
        with data_dir_lock(config.data_dir):
            await self.buffer.open()
            stats = await self.buffer.stats()
            log.info(
                "citygw %s gateway %s: %d sources, %d readings waiting in the buffer%s",
                __version__,
                config.gateway.id,
                len(self.sources),
                stats.depth,
                "" if self.remote is None else f", remote config version {self.remote.version}",
            )
            for warning in config.hub.warnings():
                log.warning("insecure hub: %s", warning)
            try:
                await self._run_components(stop)
            finally:
                await self.buffer.close()
                log.info("stopped")

    async def _run_components(self, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as group:
            self._group = group
            for source in self.sources.values():
                self._start_source(source)
            ingest = group.create_task(self.ingest.run(), name="ingest")
            self._start_uplink()
            self.extras.start(group)
            services = [
                group.create_task(
                    serve_status(status_socket_address(self.config.data_dir), self.snapshot),
                    name="status",
                ),
            ]
            if self.remote is not None:
                services.append(
                    group.create_task(
                        supervise("remote config", self.remote.run), name="remote-config"
                    )
                )
            watchdog_s = systemd.watchdog_interval_s()
            if watchdog_s is not None:
                services.append(
                    group.create_task(systemd.ping_watchdog_every(watchdog_s / 2), name="watchdog")
                )
            services.append(
                group.create_task(
                    systemd.report_status_every(
                        self.config.hub.metrics_interval_s, self.status_line
                    ),
                    name="systemd-status",
                )
            )
            await asyncio.sleep(0)  # let the components start before saying so
            systemd.notify_ready()
            await stop.wait()
            await self._stop_in_order(services, ingest)
        self._group = None

    async def _stop_in_order(
        self, services: list[asyncio.Task[None]], ingest: asyncio.Task[None]
    ) -> None:
        """Sources first, then the buffer, then the uplink; every step bounded, so a hub that
        goes away at the same moment cannot hold the stop (issue 16)."""
        systemd.notify_stopping()
        log.info("stopping: sources first, then the buffer, then the uplink")
        await stop_tasks("services", services, timeout_s=STEP_S)  # no config change starts now
        await stop_tasks("sources", list(self._source_tasks.values()), timeout_s=STEP_S)
        await stop_tasks("ingest", [ingest], timeout_s=STEP_S)  # commits what is staged
        drain_s = min(5.0, self.config.hub.timeout_s)
        left = await bounded(
            "drain", self.extras.drain(drain_s, self.uplink), timeout_s=drain_s + 1
        )
        if left:
            log.info("%d readings stay in the buffer for the next start", left)
        await bounded("offline", self.uplink.announce_offline(), timeout_s=STEP_S)
        await self.extras.stop()
        uplink = [t for t in (self._uplink_task, self._metrics_task) if t is not None]
        await stop_tasks("uplink", uplink, timeout_s=self.config.hub.timeout_s + STEP_S)


def run(config: Config, document: dict[str, Any] | None = None) -> None:
    """Blocking entry point for `citygw run` (`document`: the local file, for remote config)."""
    # One malloc arena for this small process (the SQLite worker and the loop): per-thread
    # arenas keep what they freed, which shows as RSS on a 512 MB gateway.
    libc.limit_malloc_arenas(1)

    async def main() -> None:
        stop = asyncio.Event()
        handle_stop_signals(stop, force_after_s=STOP_BOUND_S)
        await Agent(config, document=document).run(stop)

    asyncio.run(main())
