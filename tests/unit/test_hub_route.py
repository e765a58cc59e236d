"""What the ingest makes of each message (gateway/hub/route.py, pending.py, owners.py): rows
with owners and arrived runs, v3 data parked until its birth, junk quarantined with a reason."""

from __future__ import annotations

import json

from gateway import wire
from gateway.hub.db import Batch
from gateway.hub.pending import Incoming, Pending
from gateway.hub.route import HANDLED, PARKED, Router
from gateway.readings import Series

SERIES = {0: Series("pm-school/dev1", "pm2_5", "ug/m3"), 1: Series("noise", "laeq", "dB")}


def message(topic: str, payload: bytes, *, retained: bool = False) -> Incoming:
    return Incoming(1, 1, f"citygw/v1/{topic}", payload, retained, 1_000_000)


def v3(seqs: range, epoch: int = 9) -> bytes:
    batch = [(s, 1_796_000_000_000 + s, s % 2, float(s), 0) for s in seqs]
    return wire.encode_data(
        3, gateway_id="gw", epoch=epoch, batch=batch, series_of=SERIES.__getitem__
    )


def birth(epoch: int = 9) -> bytes:
    return wire.encode_status(
        "gw", state="online", version="1.2", started_ms=5, series=SERIES, wire_format=3, epoch=epoch
    )


REGISTER = {
    "v": 1,
    "gateway": "gw",
    "owner": "gemeente",
    "sources": [{"source": "pm-school", "owner": "burgermeetnet", "register": None}],
}


def test_v3_data_before_its_birth_is_parked_and_decodes_after_it() -> None:
    router, batch = Router("citygw/v1"), Batch()
    assert router.route(message("gw/data", v3(range(1, 5))), batch) == PARKED
    assert batch.observations == [] and batch.quarantine == []
    assert router.route(message("gw/status", birth()), batch) == HANDLED
    assert router.births == {"gw"}
    assert router.route(message("gw/data", v3(range(1, 5))), batch) == HANDLED
    assert [row[2] for row in batch.observations] == [1, 2, 3, 4]
    assert batch.runs == [("gw", 9, 1, 4, 1_000_000)]
    assert batch.gateways[0].columns["online"] is True
    assert batch.gateways[0].columns["version"] == "1.2"


def test_each_reading_gets_its_sources_owner_else_the_gateways_else_nothing() -> None:
    router, batch = Router("citygw/v1"), Batch()
    router.route(message("gw/status", birth()), batch)
    router.route(message("gw/data", v3(range(1, 3))), batch)
    router.route(message("gw/register", json.dumps(REGISTER).encode()), batch)
    router.route(message("gw/data", v3(range(3, 5))), batch)
    owners = [(row[2], row[3], row[6]) for row in batch.observations]
    assert owners == [
        (1, "noise", ""),
        (2, "pm-school/dev1", ""),
        (3, "noise", "gemeente"),
        (4, "pm-school/dev1", "burgermeetnet"),
    ]
    assert batch.register[0][:3] == ("gw", "pm-school", "burgermeetnet")
    assert json.loads(batch.register[0][3]) == REGISTER["sources"][0]


def test_junk_on_each_topic_is_quarantined_with_its_leaf_and_reason() -> None:
    router, batch = Router("citygw/v1"), Batch()
    for leaf, payload in [
        ("data", b"\x01\x02"),
        ("status", b"\xc1"),
        ("metrics", b"[]"),
        ("register", b"{"),
        ("config/state", b"\x00"),
        ("whatever", b""),
    ]:
        assert router.route(message(f"gw/{leaf}", payload), batch) == HANDLED
    reasons = [row[3] for row in batch.quarantine]
    assert [r.split(":")[0] for r in reasons] == [
        "data", "status", "metrics", "register", "config/state", "whatever",
    ]  # fmt: skip
    assert batch.observations == []


def test_metrics_fill_the_gateways_backlog_columns() -> None:
    router, batch = Router("citygw/v1"), Batch()
    metrics = {"buffer": {"depth": 12, "oldest_unsent_age_s": 2.5, "dropped": 3}, "x": float("nan")}
    router.route(message("gw/metrics", wire.encode_metrics("gw", metrics)), batch)
    columns = batch.gateways[0].columns
    assert (columns["buffer_depth"], columns["dropped"]) == (12, 3)
    assert columns["oldest_unsent"] == 1_000_000 - 2500
    assert json.loads(columns["metrics"])["x"] is None  # jsonb takes no NaN


def test_pending_is_bounded_and_asks_each_gateway_again_only_after_a_while() -> None:
    pending = Pending(max_messages=2, ask_every_s=15, max_age_s=100)
    m = message("gw/data", b"x")
    assert pending.park("gw", m, now_s=0) and pending.park("gw", m, now_s=1)
    assert not pending.park("gw", m, now_s=2)
    assert pending.to_ask(now_s=2) == ["gw"]
    assert pending.to_ask(now_s=10) == []
    assert pending.to_ask(now_s=17) == ["gw"]
    assert len(pending.expired(now_s=100.5)) == 1
    assert pending.take("gw") == [m]
    assert pending.messages == 0


def test_an_empty_retained_message_deletes_nothing_and_is_not_junk() -> None:
    router, batch = Router("citygw/v1"), Batch()
    for leaf in ("status", "register", "config/state"):
        assert router.route(message(f"gw/{leaf}", b"", retained=True), batch) == HANDLED
    assert not batch
    router.route(message("gw/data", b""), batch)
    assert [row[3].split(":")[0] for row in batch.quarantine] == ["data"]


def test_the_inbox_is_bounded_in_bytes_but_always_takes_one_message() -> None:
    from gateway.hub.inbox import Inbox

    inbox = Inbox(max_messages=10, max_bytes=100)
    big = message("gw/data", b"x" * 500)
    assert inbox.put(big, timeout_s=0)  # empty: one message, however large
    assert not inbox.put(message("gw/data", b"y"), timeout_s=0.01)
    assert inbox.get(timeout_s=0) is big
    assert inbox.get(timeout_s=0.01) is None
    for _ in range(10):
        assert inbox.put(message("gw/data", b"z"), timeout_s=0)
    assert not inbox.put(message("gw/data", b"z"), timeout_s=0)  # ten messages at most
