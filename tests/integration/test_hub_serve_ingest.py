"""End to end on the city side: a gateway's register and data published to a real Mosquitto,
stored by `citygw hub ingest` (SQLite, and PostgreSQL with its partitions), served by
`citygw hub serve`: the open source's readings come out of the read API and the page, the
closed source's do not."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hub_serve_setup import REPO, hub_serve

from gateway.readings import Series, StoredReading
from gateway.wire import v1

pytestmark = pytest.mark.integration
SERIES = {1: Series("pm-north", "pm2_5", "ug/m3"), 2: Series("pm-closed", "pm2_5", "ug/m3")}
REGISTER = {
    "v": 1, "gateway": "gw-e2e", "owner": "gemeente", "ts": "2026-12-07T05:30:00Z",
    "sources": [
        {"source": "pm-north", "owner": "burgermeetnet", "type": "serial", "driver": "sds011",
         "quantities": [{"quantity": "pm2_5", "unit": "ug/m3"}],
         "register": {"purpose": "Air quality", "open_data": True, "personal_data": False,
                      "location": [52.1, 5.1]}},
        {"source": "pm-closed", "owner": "gemeente", "type": "serial", "driver": "sds011",
         "quantities": [{"quantity": "pm2_5", "unit": "ug/m3"}],
         "register": {"purpose": "Not public", "open_data": False}},
    ],
}  # fmt: skip
T0_MS = 1_796_600_000_000  # 2026-12-06 23:33:20 UTC


def stored(dsn: str) -> int:
    """Readings in the hub database so far (0 before the service made its tables)."""
    if dsn.startswith("postgresql://"):
        import psycopg

        with contextlib.suppress(psycopg.Error), psycopg.connect(dsn) as db:
            return int(db.execute("SELECT count(*) FROM observations").fetchone()[0])
        return 0
    path = Path(dsn.removeprefix("sqlite:///"))
    if not path.exists():
        return 0
    with contextlib.closing(sqlite3.connect(path)) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM observations").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


@pytest.fixture(params=["sqlite", "postgresql"])
def hub_dsn(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hub.db'}"
    return str(request.getfixturevalue("postgres").dsn)


def test_ingested_readings_of_an_open_source_are_served_and_no_others(
    mosquitto: Any, topic_prefix: str, hub_dsn: str
) -> None:
    db = hub_dsn
    ingest = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "hub", "ingest", "--url", mosquitto.url,
         "--db", db, "--topic-prefix", topic_prefix, "--client-id", "e2e",
         "--log-level", "warning"],
        cwd=REPO,
    )  # fmt: skip
    try:
        rows: list[StoredReading] = [
            (n, T0_MS + n * 60_000, 1 + n % 2, float(n) if n % 2 == 0 else -float(n), 0)
            for n in range(1, 21)
        ]
        data = v1.encode_data("gw-e2e", 7, rows, SERIES.__getitem__)
        base = f"{topic_prefix}/gw-e2e"
        gateway = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="gw-e2e")
        gateway.connect(mosquitto.host, mosquitto.port)
        gateway.loop_start()
        deadline = time.monotonic() + 30
        try:
            while stored(db) < len(rows):  # until the service has subscribed and stored all
                assert time.monotonic() < deadline, f"ingest stored {stored(db)} of {len(rows)}"
                assert ingest.poll() is None, "hub ingest exited"
                gateway.publish(f"{base}/register", json.dumps(REGISTER), qos=1, retain=True)
                gateway.publish(f"{base}/data", data, qos=1).wait_for_publish(5)
                time.sleep(0.5)
        finally:
            gateway.disconnect()
            gateway.loop_stop()
    finally:
        ingest.terminate()
        ingest.wait(timeout=20)
    with hub_serve(db) as url:
        with urllib.request.urlopen(f"{url}/v1.1/Observations?$top=100", timeout=30) as answer:
            observations = json.loads(answer.read())["value"]
        with urllib.request.urlopen(f"{url}/", timeout=30) as answer:
            page = answer.read().decode()
    assert sorted(o["result"] for o in observations) == [float(n) for n in range(2, 21, 2)]
    assert {o["parameters"]["source"] for o in observations} == {"pm-north"}
    last = datetime.fromtimestamp((T0_MS + 20 * 60_000) / 1000, UTC)
    assert observations[-1]["phenomenonTime"] == last.isoformat(timespec="milliseconds")[:-6] + "Z"
    assert "Not public" in page and "20 ug/m3" in page and "-19" not in page
