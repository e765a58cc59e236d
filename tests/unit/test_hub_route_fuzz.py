"""The ingest's router under the fuzzer's mutated messages (tests/fuzz/hub_fuzz.py), and mutated
register messages: it never raises, and everything it hands the database is storable text
(no NUL, valid UTF-8) and JSON that PostgreSQL's jsonb takes (no NaN)."""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.hub.db import Batch
from gateway.hub.pending import Incoming
from gateway.hub.route import Router

FUZZ = Path(__file__).resolve().parents[1] / "fuzz" / "hub_fuzz.py"
REGISTER = json.dumps(
    {
        "v": 1,
        "gateway": "gw",
        "owner": "gemeente",
        "sources": [
            {
                "source": "pm",
                "owner": "bmn",
                "register": {"purpose": "air", "location": [52.1, 5.1]},
            }
        ],
    }
).encode()


def load_fuzzer() -> Any:
    spec = importlib.util.spec_from_file_location("hub_fuzz", FUZZ)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("hub_fuzz", module)
    spec.loader.exec_module(module)
    return module


fuzzer = load_fuzzer()


def storable(batch: Batch) -> None:
    texts: list[str] = []
    for row in batch.observations:
        texts += [row[0], *row[3:7]]
    for update in batch.gateways:
        texts += [update.gateway_id, *(v for v in update.columns.values() if isinstance(v, str))]
        for name in ("status", "metrics"):
            if name in update.columns:
                json.loads(update.columns[name], parse_constant=lambda c: pytest.fail(c))
    for register_row in batch.register:
        texts += list(register_row[:4])
        json.loads(register_row[3], parse_constant=lambda c: pytest.fail(c))
    for quarantined in batch.quarantine:
        texts += list(quarantined[1:4])
    for text in texts:
        assert "\x00" not in text
        text.encode()


@pytest.mark.parametrize("target", [*fuzzer.TARGETS, "register"])
def test_mutated_messages_on_every_topic_route_into_storable_rows(target: str) -> None:
    rng = random.Random(20261207)
    if target == "register":
        pool, mutate, leaf = [REGISTER], fuzzer.mutate_json, "register"
    else:
        pool, mutate, leaf = fuzzer.seeds(target, rng), fuzzer.MUTATORS[target], fuzzer.LEAF[target]
    router = Router("citygw/v1")
    for epoch in (7, 8):
        router.route(
            Incoming(1, 1, "citygw/v1/gw/status", fuzzer.birth(epoch, 3), True, 0), Batch()
        )
    handled = 0
    for _ in range(1500):
        payload = mutate(rng.choice(pool), rng, pool)
        batch = Batch()
        handled += router.route(Incoming(1, 1, f"citygw/v1/gw/{leaf}", payload, False, 0), batch)
        storable(batch)
    assert handled > 500
