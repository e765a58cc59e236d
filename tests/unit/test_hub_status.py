"""`citygw hub status` orders the fleet worst first (gateway/hub/status.py), and the SQLite
backend stores each reading once (gateway/hub/db/sqlite.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway import wire
from gateway.hub.db import Batch, GatewayUpdate, open_database
from gateway.hub.pending import Incoming
from gateway.hub.route import Router
from gateway.hub.status import as_json, table, worst_first
from gateway.uplinks.rebirth import RebirthGate
from gateway.uplinks.report import UplinkStats


def row(gateway: str, **values: Any) -> dict[str, Any]:
    base = {
        "gateway_id": gateway, "online": True, "last_seen": 1000, "version": "1",
        "config_version": None, "buffer_depth": 0, "oldest_unsent": None, "dropped": 0,
        "open_gaps": 0, "missing": 0, "silent_sources": {},
    }  # fmt: skip
    return base | values


def test_offline_first_then_missing_readings_then_drops_then_backlog() -> None:
    rows = [
        row("fine"),
        row("backlog", buffer_depth=500),
        row("dropping", dropped=7),
        row("gappy", open_gaps=1, missing=40),
        row("gone", online=False),
    ]
    order = [r["gateway_id"] for r in worst_first(rows, now_ms=5000)]
    assert order == ["gone", "gappy", "dropping", "backlog", "fine"]
    lines = table(worst_first(rows, now_ms=5000))
    assert lines[0].startswith("gateway") and "OFFLINE" in lines[1] and "40 missing" in lines[2]


def test_a_gateway_with_silent_sources_comes_after_the_offline_and_before_the_gappy() -> None:
    rows = [
        row("fine"),
        row("gappy", open_gaps=1, missing=40),
        row("one-silent", silent_sources={"pm-north": 720.0}),
        row("two-silent", silent_sources={"ble/a": 1000.0, "energy/m1": 90.0}),
        row("gone", online=False),
    ]
    order = [r["gateway_id"] for r in worst_first(rows, now_ms=5000)]
    assert order == ["gone", "two-silent", "one-silent", "gappy", "fine"]


def metrics(gateway: str, silent: object, received_ms: int) -> Incoming:
    payload = wire.encode_metrics(gateway, {"buffer": {"depth": 3}, "silent": silent})
    return Incoming(1, 1, f"citygw/v1/{gateway}/metrics", payload, False, received_ms)


def test_hub_status_shows_each_gateways_silent_sources_from_its_last_metrics(
    tmp_path: Path,
) -> None:
    """Through the ingest's router into SQLite, and read back as `citygw hub status` does."""
    db = open_database(f"sqlite:///{tmp_path}/hub.db")
    router, batch = Router("citygw/v1"), Batch()
    silent = {f"pm-{n}": 60.0 * n for n in range(1, 6)}
    router.route(metrics("gw-quiet", silent, 1_796_000_000_000), batch)
    router.route(metrics("gw-fine", {}, 1_796_000_000_000), batch)
    router.route(metrics("gw-odd", {"x": "long", "y": True, "z": -1, "ok": 61}, 1), batch)
    db.write(batch)
    rows = worst_first(db.fleet(), now_ms=1_796_000_001_000)
    db.close()
    assert [r["gateway_id"] for r in rows] == ["gw-quiet", "gw-odd", "gw-fine"]
    assert rows[0]["silent_sources"] == silent
    assert rows[1]["silent_sources"] == {"ok": 61.0}  # what is not seconds is left out
    assert as_json(rows)[0]["silent_sources"] == silent
    lines = table(rows)
    assert lines[0].endswith("silent sources")
    assert lines[1].endswith("pm-5 5 min, pm-4 4 min, pm-3 3 min, +2 more")
    assert lines[3].endswith("-")


def test_sqlite_stores_a_resent_reading_once_and_reports_the_fleet(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path}/hub.db")
    batch = Batch(
        observations=[
            ("gw", 1, s, "pm", "pm2_5", "ug/m3", "", 1_796_000_000_000, 1.5, 0) for s in (1, 2)
        ],
        runs=[("gw", 1, 1, 2, 1)],
        gateways=[GatewayUpdate("gw", {"online": False, "last_seen": 1_796_000_000_000})],
    )
    db.write(batch)
    db.write(batch)
    assert db.observation_count() == 2
    fleet = db.fleet()
    assert fleet[0]["gateway_id"] == "gw" and fleet[0]["online"] is False
    assert fleet[0]["last_seen"] == 1_796_000_000_000
    db.close()
    again = open_database(f"sqlite:///{tmp_path}/hub.db")  # migrations are not applied twice
    assert again.observation_count() == 2
    again.close()


def test_the_gateway_honours_one_rebirth_request_per_ten_seconds_and_counts_the_rest() -> None:
    now = [0.0]
    stats = UplinkStats()
    gate = RebirthGate(stats, monotonic_s=lambda: now[0])
    assert gate.allow()
    now[0] = 9.9
    assert not gate.allow()
    now[0] = 10.0
    assert gate.allow()
    assert (stats.rebirths, stats.rebirths_suppressed) == (2, 1)
