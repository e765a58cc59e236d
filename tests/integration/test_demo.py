"""`citygw demo` (what `make demo` runs): the simulated sensors reach the hub, the citizens'
PMS5003 reaches their own broker and SensorThings server and never the hub, the register is
shown, a car passes the radar, the rising canal raises its alert; it stops cleanly."""

from __future__ import annotations

import asyncio
import re
import signal
import sys

import pytest

from gateway.devtools import sim_node as nodesim
from gateway.devtools.demo_parts import sta_missing

pytestmark = pytest.mark.integration


async def run_demo(*args: str, interrupt_after_s: float | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "demo",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    if interrupt_after_s is not None:
        await asyncio.sleep(interrupt_after_s)
        process.send_signal(signal.SIGINT)
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode()


async def test_demo_shows_both_owners_the_register_radar_and_alert_then_stops() -> None:
    code, out = await run_demo("--seconds", "10")
    assert code == 0, out
    assert "gw-demo/pm-north  PM2.5 " in out and " PM10 " in out
    assert "-- gw-demo: push applied" in out and "source pm-south added" in out
    pushed = out.index("-- gw-demo: push applied")
    assert "citizens <- gw-demo/pm-south  PM1 " in out[pushed:], "the pushed source reports"
    assert "count/0.1L >0.3um " in out[pushed:], "with its particle counts"
    assert "gw-demo/pm-south" not in out[: out.index("-- operator: signed config push")]
    assert "hub <- gw-demo/pm-south" not in out, "the citizens' readings never reach the hub"
    assert "citizens <- gw-demo/pm-north" not in out, "nor the operator's their broker"
    assert "   pm-south (burgermeetnet, Air): Fijnstof bij de school" in out, "the register"
    assert "   pm-north (gemeente, Air): " in out
    assert "== register export (geojson): 4 features, owners burgermeetnet and gemeente" in out
    if sta_missing() is None:
        found = re.search(r"(\d+) observations on the server at the end", out)
        assert found and int(found.group(1)) > 0, out
    else:
        assert f"STA:      none, so no SensorThings uplink: {sta_missing()}" in out
    assert re.search(r"hub <- gw-demo/radar     speed_kmh=\d", out), "a car passes the radar"
    assert "gw-demo/ble/kerbside battery_pct=87 temperature_c=" in out
    assert "adverts of unlisted devices dropped" in out
    assert "5E:11:22:33:44:55" not in out.upper(), "a passing phone never reaches the hub"
    if nodesim.missing() is None:  # Node.js and the MicroPython package (make test installs them)
        assert "gw-demo/pole-node/bme280 temperature_c=" in out, "the virtual node's firmware"
    assert "gw-demo/canal     range_status=0 distance_mm=" in out, "the MaxBotix over the canal"
    assert "gw-demo/canal     ALERT canal-high RAISED: 1" in out, "the rising canal's alert"
    assert "== health gw-demo" in out and "0 dropped" in out
    assert "uplinks (readings sent, waiting): hub " in out and "burgers-mqtt " in out
    assert max(map(len, out.splitlines())) < 100, "every line fits a terminal"
    assert out.rstrip().endswith("readings."), out
    assert "Traceback" not in out


async def test_demo_stops_cleanly_on_ctrl_c() -> None:
    code, out = await run_demo(interrupt_after_s=4)
    assert code == 0, out
    assert "stopped cleanly" in out and "Traceback" not in out
