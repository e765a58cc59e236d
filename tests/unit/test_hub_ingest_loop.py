"""The ingest loop's promises (gateway/hub/ingest.py) with the database and the MQTT session
replaced at their seams (a database that refuses a value or goes away cannot be made to on
demand; the real ones are in tests/integration/test_hub_ingest*.py): a message is acknowledged
only after the transaction that holds it committed; a refused batch is stored message by
message; parked v3 data is acknowledged once its birth came."""

from __future__ import annotations

import threading

from gateway import wire
from gateway.hub.db import Batch, Refused, Unavailable
from gateway.hub.inbox import Inbox
from gateway.hub.ingest import Ingest, Settings
from gateway.hub.pending import Incoming
from gateway.hub.route import Router
from gateway.readings import Series

SERIES = {0: Series("pm", "pm2_5", "ug/m3")}


class FakeDatabase:
    def __init__(self, failures: list[Exception] | None = None) -> None:
        self.failures = failures or []
        self.committed: list[Batch] = []
        self.refuse_gateway = ""

    def write(self, batch: Batch) -> None:
        if self.failures:
            raise self.failures.pop(0)
        if self.refuse_gateway and any(r[0] == self.refuse_gateway for r in batch.observations):
            raise Refused("value out of range")
        self.committed.append(batch)

    def keep_gaps(self, *, now_ms: int, grace_ms: int) -> None:
        return None


class FakeSession:
    def __init__(self, db: FakeDatabase) -> None:
        self.db, self.acked, self.published = db, [], []
        self.acked_after: list[int] = []  # transactions committed when each ack went

    def ack(self, message: Incoming) -> None:
        self.acked.append(message.mid)
        self.acked_after.append(len(self.db.committed))

    def publish(self, topic: str, payload: bytes) -> None:
        self.published.append(topic)


class NoWait(threading.Event):
    """A stop event that is never set and whose retry waits return at once."""

    def wait(self, timeout: float | None = None) -> bool:
        return False


def data(mid: int, gateway: str, fmt: int = 1) -> Incoming:
    batch = [(mid, 1_796_000_000_000, 0, 1.0, 0)]
    payload = wire.encode_data(
        fmt, gateway_id=gateway, epoch=3, batch=batch, series_of=SERIES.__getitem__
    )
    return Incoming(mid, 1, f"citygw/v1/{gateway}/data", payload, False, 0)


def loop(db: FakeDatabase) -> tuple[Ingest, FakeSession]:
    session = FakeSession(db)
    ingest = Ingest(db, session, Inbox(), Router("citygw/v1"), settings=Settings(stats_every_s=1e9))  # type: ignore[arg-type]
    return ingest, session


def test_messages_are_acknowledged_only_after_their_transaction_committed() -> None:
    db = FakeDatabase([Unavailable("down"), Unavailable("still down")])
    ingest, session = loop(db)
    ingest._handle([data(1, "gw"), data(2, "gw")], NoWait())
    assert len(db.committed) == 1 and len(db.committed[0].observations) == 2
    assert session.acked == [1, 2]
    assert session.acked_after == [1, 1]
    assert ingest.counters.retries == 2


def test_nothing_is_acknowledged_when_stopped_before_the_commit() -> None:
    db = FakeDatabase([Unavailable("down")])
    ingest, session = loop(db)
    stop = threading.Event()
    stop.set()
    ingest._handle([data(1, "gw")], stop)
    assert session.acked == [] and db.committed == []


def test_a_refused_batch_is_stored_message_by_message_and_the_refused_one_quarantined() -> None:
    db = FakeDatabase()
    db.refuse_gateway = "bad"
    ingest, session = loop(db)
    ingest._handle([data(1, "gw"), data(2, "bad"), data(3, "gw")], threading.Event())
    stored = [row[0] for batch in db.committed for row in batch.observations]
    quarantined = [q[2] for batch in db.committed for q in batch.quarantine]
    assert stored == ["gw", "gw"] and quarantined == ["bad"]
    assert session.acked == [1, 2, 3]


def test_parked_v3_data_is_acknowledged_after_its_birth_and_the_birth_was_asked_for() -> None:
    db = FakeDatabase()
    ingest, session = loop(db)
    ingest._handle([data(1, "gw", fmt=3)], threading.Event())
    assert session.acked == [] and session.published == ["citygw/v1/gw/cmd/birth"]
    birth = wire.encode_status(
        "gw", state="online", version="1", started_ms=0, series=SERIES, wire_format=3, epoch=3
    )
    ingest._handle([Incoming(2, 1, "citygw/v1/gw/status", birth, False, 0)], threading.Event())
    assert sorted(session.acked) == [1, 2]
    assert [row[2] for batch in db.committed for row in batch.observations] == [1]
