"""Edge alerts end to end: SDS011 frames on a pty, the agent as a process, a real Mosquitto.

With a 30 s batch window an alert and its clear reach the hub on the alert topic long before
the batch, and are acknowledged there (they are not in the data messages after); an alert
raised while the broker is down survives a kill -9 of the agent and arrives after the restart
(on the alert topic and in a data message, stored once);
a broker whose ACL refuses the alert topic does not count as having it, and the data message
carries the alert reading instead; with MQTT 3.1.1 the data message carries it too, and
`citygw hub tail` shows it once. A MaxBotix on a pty (the simulator of gateway/devtools/sim_lines)
with a canal rising fast raises a level-and-rate flood alert, cleared when the level stops rising.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

import msgpack
import pytest
from spine_setup import config, frame, frame_numbers, readings, sources_open

from gateway import wire
from gateway.hub.decode import HubDecoder

pytestmark = pytest.mark.integration

RULE = {
    "name": "pm-high",
    "source": "pm",
    "quantity": "pm2_5_ugm3",
    "above": 50.0,
    "hysteresis": 5.0,
    "min_interval_s": 0.0,
}
HIGH, LOW, CLEAR = 600, 100, 400  # frame numbers: PM2.5 60, 10, 40 ug/m3


def alert_config(tmp_path: Path, broker: Any, prefix: str, pty: Any, **hub: Any) -> dict[str, Any]:
    document = config(
        tmp_path,
        broker,
        prefix,
        {"pm": pty.link},
        flush_interval_s=30.0,  # the batch window the alerts must not wait for
        buffer={"commit_interval_ms": 5000},  # nor the commit interval
        **hub,
    )
    document["alerts"] = [RULE]
    return document


def alerts(messages: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(m.payload) for m in messages if m.topic.endswith("/alert")]


def hub_alert_readings(messages: list[Any]) -> list[wire.HubReading]:
    """Alert readings as a hub stores them: from alert and data messages, each key once."""
    decoder = HubDecoder()
    out = []
    for m in messages:
        event = decoder.decode(m.topic, m.payload)
        out += [r for r in event.readings if r.quantity.startswith("alert/")]
    return out


def last_metrics(messages: list[Any]) -> dict[str, Any]:
    metrics = [m for m in messages if m.topic.endswith("/metrics")]
    return msgpack.unpackb(metrics[-1].payload) if metrics else {}  # type: ignore[no-any-return]


async def start_agent(agent: Any) -> None:
    agent.start()
    await agent.wait_for_log("connected to hub")
    await sources_open(agent)


async def test_an_alert_and_its_clear_reach_the_hub_at_once_not_with_the_batch(
    tmp_path: Path,
    mosquitto: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
) -> None:
    pty = make_pty("ttyUSB0")
    sub = await hub_subscriber(mosquitto, f"{topic_prefix}/#")
    agent = agent_process(write_config(alert_config(tmp_path, mosquitto, topic_prefix, pty)))
    await start_agent(agent)
    for n in (LOW, HIGH):
        await pty.write_async(frame(n))
    msgs = await sub.wait_for(lambda ms: len(alerts(ms)) == 1, timeout=10)
    assert readings(msgs) == [], "the batch window has not passed: no data message yet"
    (raised,) = alerts(msgs)
    assert raised["state"] == "raised" and raised["gateway"] == "gw-test"
    assert (raised["rule"], raised["source"], raised["quantity"], raised["unit"]) == (
        "pm-high",
        "pm",
        "pm2_5_ugm3",
        "ug/m3",
    )
    assert (raised["value"], raised["threshold"]) == (60.0, 50.0)

    await pty.write_async(frame(CLEAR))
    msgs = await sub.wait_for(lambda ms: len(alerts(ms)) == 2, timeout=10)
    assert readings(msgs) == []
    cleared = alerts(msgs)[1]
    assert (cleared["state"], cleared["value"], cleared["threshold"]) == ("cleared", 40.0, 45.0)
    assert cleared["seq"] > raised["seq"] and cleared["epoch"] == raised["epoch"]
    await sub.wait_for(lambda ms: last_metrics(ms).get("alerts", {}).get("sent") == 2)

    agent.terminate()  # the orderly stop sends what waits: the batch, without the alerts
    assert agent.wait() == 0
    msgs = await sub.wait_for(lambda ms: len(frame_numbers(readings(ms))) == 3, timeout=10)
    assert frame_numbers(readings(msgs)) == [LOW, HIGH, CLEAR]
    assert [r for r in readings(msgs) if r.quantity.startswith("alert/")] == [], (
        "acknowledged on their PUBACK: not sent again in a data message"
    )
    stored = hub_alert_readings(msgs)
    assert [(r.seq, r.value) for r in stored] == [(raised["seq"], 1.0), (cleared["seq"], 0.0)]
    metrics = last_metrics(msgs)["alerts"]
    assert (metrics["raised"], metrics["cleared"], metrics["refused"]) == (1, 1, 0)


async def test_an_alert_raised_while_the_broker_is_down_survives_a_kill_9(
    tmp_path: Path,
    mosquitto: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
) -> None:
    pty = make_pty("ttyUSB0")
    sub = await hub_subscriber(mosquitto, f"{topic_prefix}/#", persistent=True)
    agent = agent_process(write_config(alert_config(tmp_path, mosquitto, topic_prefix, pty)))
    await start_agent(agent)
    mosquitto.stop()
    await pty.write_async(frame(HIGH))
    await agent.wait_for_log("alert pm-high raised: pm pm2_5_ugm3 = 60")  # committed, not sent
    assert agent.kill9() == -signal.SIGKILL
    mosquitto.start()
    await sub.wait_connected(count=sub.connects + 1, timeout=15)
    agent.start()
    msgs = await sub.wait_for(lambda ms: hub_alert_readings(ms) and alerts(ms), timeout=20)
    (alert,) = hub_alert_readings(msgs)
    assert (alert.source, alert.quantity, alert.value) == ("pm", "alert/pm-high", 1.0)
    (message,) = alerts(msgs)  # sent on the alert topic too, found in the buffer at the start
    assert (message["seq"], message["state"], message["rule"]) == (alert.seq, "raised", "pm-high")
    assert (message["value"], message["threshold"]) == (None, 50.0), "not stored: unknown"
    msgs = await sub.wait_for(lambda ms: frame_numbers(readings(ms)) == [HIGH], timeout=20)
    assert len(hub_alert_readings(msgs)) == 1, "the hub has it once"


async def test_a_broker_refusing_the_alert_topic_does_not_count_as_sent(
    tmp_path: Path,
    make_broker: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
) -> None:
    acl_path = tmp_path / "acl"
    leaves = ["status", "metrics", "config/state", "data"]  # not "alert"
    acl_path.write_text(
        "\n".join(
            [f"topic read {topic_prefix}/#"]
            + [f"topic write {topic_prefix}/gw-test/{leaf}" for leaf in leaves]
        )
    )
    broker = make_broker(extra_config=f"acl_file {acl_path}")
    pty = make_pty("ttyUSB0")
    sub = await hub_subscriber(broker, f"{topic_prefix}/#")
    agent = agent_process(write_config(alert_config(tmp_path, broker, topic_prefix, pty)))
    await start_agent(agent)
    await pty.write_async(frame(HIGH))
    await agent.wait_for_log(f"refuses our publishes on {topic_prefix}/gw-test/alert")
    msgs = await sub.wait_for(lambda ms: last_metrics(ms).get("alerts", {}).get("refused") == 1)
    assert last_metrics(msgs)["alerts"]["sent"] == 0
    assert alerts(msgs) == []

    agent.terminate()
    assert agent.wait() == 0
    msgs = await sub.wait_for(lambda ms: hub_alert_readings(ms), timeout=10)
    (alert,) = hub_alert_readings(msgs)
    assert (alert.quantity, alert.value) == ("alert/pm-high", 1.0), "the data message has it"


async def _line_with(stream: asyncio.StreamReader, needle: str, seen: list[str], agent: Any) -> str:
    """The next line of `hub tail` with `needle`; a failure shows all it printed and the
    agent's log (a timing failure here is otherwise impossible to read afterwards)."""
    try:
        async with asyncio.timeout(15):
            while True:
                line = (await stream.readline()).decode()
                if not line:
                    break
                seen.append(line)
                if needle in line:
                    return line
    except TimeoutError:
        pass
    raise AssertionError(
        f"hub tail printed no line with {needle!r}; it printed:\n{''.join(seen)}"
        f"\nthe agent's log:\n{agent.log_text()}"
    )


async def test_with_mqtt_3_1_1_the_data_message_carries_the_alert_too_and_hub_tail_shows_it_once(
    tmp_path: Path,
    mosquitto: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
) -> None:
    pty = make_pty("ttyUSB0")
    sub = await hub_subscriber(mosquitto, f"{topic_prefix}/#")
    document = alert_config(tmp_path, mosquitto, topic_prefix, pty, protocol="3.1.1")
    agent = agent_process(write_config(document))
    await start_agent(agent)
    tail = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "hub",
        "tail",
        "--url",
        mosquitto.url,
        "--topic-prefix",
        topic_prefix,
        "--client-id",
        f"hub-{topic_prefix.rsplit('/', 1)[-1]}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert tail.stdout is not None
    seen: list[str] = []
    try:
        await _line_with(tail.stdout, "-- status from gw-test", seen, agent)  # retained: subscribed
        await pty.write_async(frame(HIGH))
        line = await _line_with(tail.stdout, "ALERT", seen, agent)
        assert (
            " ALERT RAISED gw-test pm pm-high: pm2_5_ugm3 = 60 ug/m3 (threshold 50) [key " in line
        )
        agent.terminate()
        assert agent.wait() == 0
        await _line_with(tail.stdout, "gw-test pm pm2_5_ugm3 = 60 ug/m3", seen, agent)
    finally:
        tail.terminate()
        await tail.wait()
    assert sum("ALERT" in s for s in seen) == 1, "".join(seen)
    in_data = [r for r in readings(sub.messages) if r.quantity == "alert/pm-high"]
    assert [r.value for r in in_data] == [1.0], "3.1.1: the lane does not acknowledge"
    assert len(alerts(sub.messages)) == 1


async def test_a_rising_canal_level_raises_the_flood_alert_and_clears_when_it_levels_off(
    tmp_path: Path,
    mosquitto: Any,
    topic_prefix: str,
    make_pty: Any,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
) -> None:
    from gateway.devtools.sim_lines import SimulatedMaxbotix

    mount_mm = 4000
    levels = [500.0] * 20 + [500.0 + 5 * n for n in range(1, 141)] + [1200.0] * 60  # per 0.1 s
    pty = make_pty("ttyUSB1")
    sonar = SimulatedMaxbotix(
        pty.master_fd,
        model="MB7389",
        distances=iter(mount_mm - lv for lv in levels),
        interval_s=0.1,
    )
    sub = await hub_subscriber(mosquitto, f"{topic_prefix}/#")
    document = alert_config(tmp_path, mosquitto, topic_prefix, pty)
    document["sources"] = [
        {
            "type": "serial",
            "name": "canal",
            "port": str(pty.link),
            "driver": "maxbotix",
            "model": "MB7389",
            "mount_height_mm": mount_mm,
        }
    ]
    document["alerts"] = [
        {
            "name": "canal-rising-fast",
            "source": "canal",
            "quantity": "water_level_mm",
            "above": 800,
            "rate_per_min": 600,  # 10 mm/s; the simulated canal rises 50 mm/s
            "rate_window_s": 2,
            "min_interval_s": 0,
        }
    ]
    agent = agent_process(write_config(document))
    await start_agent(agent)
    sim = asyncio.create_task(sonar.run())
    try:
        msgs = await sub.wait_for(lambda ms: len(alerts(ms)) == 2, timeout=40)
    finally:
        sim.cancel()
        await asyncio.gather(sim, return_exceptions=True)
    raised, cleared = alerts(msgs)
    assert (raised["state"], raised["source"], raised["quantity"], raised["unit"]) == (
        "raised",
        "canal",
        "water_level_mm",
        "mm",
    )
    assert 800 < raised["value"] <= 810 and raised["threshold"] == 800
    assert raised["rate_per_min"] == pytest.approx(3000, rel=0.2)
    assert (cleared["state"], cleared["value"], cleared["threshold"]) == ("cleared", 1200, None)
    assert cleared["rate_per_min"] < 600, "cleared once the level stopped rising"
    assert readings(msgs) == [], "all within the 30 s batch window"
