"""An uplink's alert lane without a connection: pending alerts are bounded (overflow counted),
kept by key, and taken over by the uplink that replaces it (new hub settings)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.agent.alerts import AlertEvent, AlertNotice
from gateway.config import parse_config
from gateway.store.buffer import SqliteBuffer
from gateway.store.worker import AsyncBuffer
from gateway.uplinks import alerts as lane_module
from gateway.uplinks.alerts import AlertLane

EVENT = AlertEvent("pm-high", "pm", "pm2_5_ugm3", "ug/m3", True, 57.3, 50.0, None, 1000)


def lane(tmp_path: Path, protocol: str = "5") -> AlertLane:
    config = parse_config(
        {
            "gateway": {"id": "gw-1", "data_dir": str(tmp_path)},
            "hub": {"url": "mqtt://127.0.0.1:1", "topic_prefix": "city/v1", "protocol": protocol},
        }
    )
    buffer = AsyncBuffer(lambda: SqliteBuffer(tmp_path / "b.db", max_readings=1000))
    return AlertLane(config.hub, gateway_id="gw-1", buffer=buffer)


def test_the_lane_publishes_on_the_gateways_alert_topic(tmp_path: Path) -> None:
    assert lane(tmp_path).topic == "city/v1/gw-1/alert"
    assert lane(tmp_path)._ack_on_puback
    assert not lane(tmp_path, "3.1.1")._ack_on_puback, "3.1.1 brokers acknowledge what they drop"


def test_pending_alerts_are_bounded_kept_by_key_and_taken_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lane_module, "PENDING_MAX", 3)
    old = lane(tmp_path)
    for seq in (1, 2, 2, 3, 4, 5):
        old.offer(AlertNotice(seq, 7, EVENT))
    assert old.stats() == {"sent": 0, "refused": 0, "pending": 3, "overflow": 2}
    new = lane(tmp_path)
    new.adopt(old)
    assert list(new._pending) == [(7, 3), (7, 4), (7, 5)]
