"""The alert message: what the gateway encodes the hub decodes into an alert event with the
alert's reading (dropped by key when a data message brought it first); anything else anyone
publishes on an alert topic is an invalid event with its reason; `citygw hub tail` shows alerts."""

from __future__ import annotations

import json
from typing import Any

import msgpack
import pytest

from gateway import wire
from gateway.cli.hub import print_event
from gateway.hub.decode import HubDecoder
from gateway.readings import Series

TS = 1_765_085_400_123


def alert(**overrides: Any) -> bytes:
    fields: dict[str, Any] = {
        "gateway_id": "gw",
        "rule": "pm-high",
        "raised": True,
        "source": "pm",
        "quantity": "pm2_5_ugm3",
        "unit": "ug/m3",
        "value": 57.3,
        "threshold": 50.0,
        "rate_per_min": None,
        "ts_ms": TS,
        "epoch": 7,
        "seq": 42,
        "clock_synced": True,
    }
    return wire.encode_alert(**(fields | overrides))


def test_an_alert_is_small_self_describing_json() -> None:
    payload = alert()
    assert len(payload) < 300
    assert json.loads(payload) == {
        "v": 1,
        "gateway": "gw",
        "rule": "pm-high",
        "state": "raised",
        "source": "pm",
        "quantity": "pm2_5_ugm3",
        "unit": "ug/m3",
        "value": 57.3,
        "threshold": 50.0,
        "rate_per_min": None,
        "ts_ms": TS,
        "epoch": 7,
        "seq": 42,
        "clock_synced": True,
    }
    assert json.loads(alert(value=float("nan"), raised=False))["value"] is None
    assert json.loads(alert(raised=False))["state"] == "cleared"


def test_the_hub_decodes_an_alert_with_its_reading_and_drops_it_by_key_the_second_time() -> None:
    decoder = HubDecoder()
    event = decoder.decode("p/gw/alert", alert())
    assert event.kind == "alert" and event.fields is not None
    assert event.fields["state"] == "raised" and event.fields["threshold"] == 50.0
    (reading,) = event.readings
    assert reading.key == ("gw", 7, 42)
    assert (reading.source, reading.quantity, reading.unit, reading.value) == (
        "pm",
        "alert/pm-high",
        "1",
        1.0,
    )
    again = decoder.decode("p/gw/alert", alert())
    assert again.kind == "alert" and again.readings == ()


def test_an_alert_reading_a_data_message_brought_first_is_not_shown_again() -> None:
    decoder = HubDecoder()
    series = {1: Series("pm", "alert/pm-high", "1")}
    data = wire.encode_data(
        1, gateway_id="gw", epoch=7, batch=[(42, TS, 1, 1.0, 0)], series_of=series.__getitem__
    )
    assert [r.quantity for r in decoder.decode("p/gw/data", data).readings] == ["alert/pm-high"]
    assert decoder.decode("p/gw/alert", alert()).readings == ()


def pack(message: object) -> bytes:
    return msgpack.packb(message, use_bin_type=True)  # type: ignore[no-any-return]


def edited(**changes: Any) -> bytes:
    message = json.loads(alert())
    message.update(changes)
    return json.dumps({k: v for k, v in message.items() if v != ...}).encode()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "expected a JSON object"),
        (b"\xff\xfe", "expected a JSON object"),
        (pack({"v": 1}), "expected a JSON object"),
        (b"[" * 100_000, "over the 4096 limit"),
        (b"[" * 4000, "expected a JSON object"),
        (b"[1, 2]", "expected a JSON object"),
        (edited(v=2), "unknown version"),
        (edited(v=True), "unknown version"),
        (edited(gateway="other"), "names another gateway"),
        (edited(rule=...), "rule: expected a string"),
        (edited(rule="x" * 300), "rule: expected a string of at most 256"),
        (edited(state="on"), "state: expected"),
        (edited(value="57"), "value: expected a finite number"),
        (edited(value=10**400), "value: expected a finite number"),
        (b'{"v": 1, "value": NaN}', "expected a JSON object"),
        (edited(threshold=[1]), "threshold: expected a finite number"),
        (edited(ts_ms=10**20), "ts_ms out of range"),
        (edited(ts_ms=1.5), "ts_ms: expected an integer"),
        (edited(seq=-(2**64)), "seq out of range"),
        (edited(epoch=None), "epoch: expected an integer"),
        (edited(clock_synced="yes"), "clock_synced: expected"),
    ],
)
def test_anything_else_on_an_alert_topic_is_invalid_with_a_reason(
    payload: bytes, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    event = HubDecoder().decode("p/gw/alert", payload)
    assert event.kind == "invalid"
    assert reason in event.error and event.error.startswith("alert: ")
    print_event(event, as_json=True)
    assert capsys.readouterr().out == ""


def test_tail_shows_an_alert_and_an_alert_reading_from_a_data_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    decoder = HubDecoder()
    event = decoder.decode("p/gw/alert", alert())
    print_event(event, as_json=False)
    text = capsys.readouterr().out
    assert text == (
        "2025-12-07T05:30:00.123Z ALERT RAISED gw pm pm-high: pm2_5_ugm3 = 57.3 ug/m3 "
        "(threshold 50) [key 7/42]\n"
    )
    print_event(event, as_json=True)
    line = json.loads(capsys.readouterr().out)
    assert line["key"] == "gw/7/42" and line["quantity"] == "alert/pm-high"
    assert line["alert"] == {
        "rule": "pm-high",
        "state": "raised",
        "quantity": "pm2_5_ugm3",
        "unit": "ug/m3",
        "value": 57.3,
        "threshold": 50.0,
        "rate_per_min": None,
    }
    series = {1: Series("pm\x1b[2J", "alert/pm-high", "1")}
    data = wire.encode_data(
        1, gateway_id="gw", epoch=7, batch=[(43, TS, 1, 0.0, 0)], series_of=series.__getitem__
    )
    print_event(decoder.decode("p/gw/data", data), as_json=False)
    assert capsys.readouterr().out == (
        "2025-12-07T05:30:00.123Z ALERT CLEARED gw pm\\x1b[2J pm-high [key 7/43]\n"
    )
