"""What `citygw node flash` lets through (gateway/nodes/config.py), the node takes without a
"config" error: the host's check is never looser than the firmware's own (`main._check`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.nodes.config import validate

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"
EXAMPLE = json.loads((FIRMWARE / "node.json").read_text())
VALID = [
    EXAMPLE,
    {
        "node_id": 3,
        "link": "ble",
        "ble": {"interval_ms": 500, "key": "00" * 16},
        "sensors": [
            {"type": "sht3x", "name": "air", "bus": 0, "address": 68},
            {"type": "pms5003", "uart": 1, "tx": 8, "rx": 9, "warmup_s": 30},
        ],
    },
    {},
]
INVALID = [
    dict(EXAMPLE, interval=60),
    dict(EXAMPLE, interval_s=1),
    dict(EXAMPLE, sensors=[{"type": "bmp180"}]),
]


def _firmware_errors(micropython_json: Callable[..., Any], configs: list[Any]) -> list[Any]:
    literal = json.dumps(json.dumps(configs))
    return list(
        micropython_json(
            f"import json, main\nprint(json.dumps([main._check(c) for c in json.loads({literal})]))"
        )
    )


def test_what_the_host_accepts_the_node_takes_whole(micropython_json: Callable[..., Any]) -> None:
    assert all(
        validate(cfg, board="rp2" if cfg.get("link") == "ble" else "esp32") == [] for cfg in VALID
    )
    assert _firmware_errors(micropython_json, VALID) == [[]] * len(VALID)


def test_what_the_node_would_report_the_host_refuses(micropython_json: Callable[..., Any]) -> None:
    node_errors = _firmware_errors(micropython_json, INVALID)
    assert all(errors for errors in node_errors)
    assert all(validate(cfg, board="esp32") for cfg in INVALID)
