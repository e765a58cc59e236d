"""The table of formats: an uplink whose format this build lacks is reported, not fatal, and
its readings stay buffered; the lanes follow the config's owners and uplinks."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from gateway.agent.uplinks import ExtraUplinks, buffer_for
from gateway.config import parse_config
from gateway.store.lanes import LaneSpec
from gateway.uplinks import factory


def config(tmp_path: Path) -> Any:
    return parse_config(
        {
            "gateway": {"id": "gw-1", "data_dir": str(tmp_path), "owner": "city"},
            "hub": {"url": "mqtt://127.0.0.1:1883", "owners": ["city", "shared"]},
            "uplinks": [
                {
                    "name": "sta",
                    "owners": ["shared"],
                    "url": "http://127.0.0.1:1/v1.1",
                    "format": "sensorthings",
                    "max_backlog_readings": 500,
                    "when_full": "drop_newest",
                }
            ],
        }
    )


def test_each_uplink_gets_a_lane_for_its_owners(tmp_path: Path) -> None:
    assert factory.lane_specs(config(tmp_path)) == [
        LaneSpec("hub", frozenset({"city", "shared"})),
        LaneSpec("sta", frozenset({"shared"}), max_backlog=500, when_full="drop_newest"),
    ]


def test_a_format_this_build_lacks_is_reported_and_its_readings_stay_buffered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(factory.DESTINATIONS, "sensorthings", "gateway.uplinks.not_in_this_build")
    cfg = config(tmp_path)

    async def main() -> int:
        buffer = buffer_for(cfg)
        await buffer.open()
        try:
            extras = ExtraUplinks(
                buffer=buffer,
                gateway_id="gw-1",
                version="t",
                started_ms=0,
                before_flush=asyncio.sleep,  # type: ignore[arg-type]
            )
            extras.build(cfg.uplinks)
            assert extras.running == {}
            assert "not available in this build" in extras.errors["sta"]
            return await buffer.backlog("sta")  # its lane is there: readings wait for it
        finally:
            await buffer.close()

    assert asyncio.run(main()) == 0
    with pytest.raises(factory.FormatUnavailable, match="uplinks sta: format 'sensorthings'"):
        factory.destination(cfg.uplinks[0], gateway_id="gw-1")
