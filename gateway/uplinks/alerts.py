"""An uplink's fast lane for alerts: each alert reading published at once on the alert topic.

The ingest commits an alert reading at once and hands its key to every uplink that carries its
source (`AlertLane.offer`); the lane publishes it at QoS 1 on `<prefix>/<gateway_id>/alert`
without waiting for the batch window, while the connection's batches go on. On the PUBACK the
reading is acknowledged in the buffer like any reading, so it need not go in a data message
again (if a batch took it first, the hub drops the second copy by key). A refused publish
(reason code >= 0x80) acknowledges nothing: the reading goes in a data message as usual, and
the refusal is counted. With MQTT 3.1.1 a broker acknowledges what its ACL drops, so there the
lane never acknowledges: the data message carries every alert reading too. A lost connection
keeps the alert pending; it goes first thing on the next one. After a restart the ingest offers
the alert readings still in the buffer again (they also go with the backlog in the data
messages; docs/alerts.md, guarantees).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict

from gateway import wire
from gateway.agent.alerts import AlertNotice
from gateway.config import HubSection
from gateway.store.lanes import DEFAULT_LANE
from gateway.store.worker import AsyncBuffer
from gateway.uplinks.client import HubSession, PublishRefused
from gateway.uplinks.report import HubReport

log = logging.getLogger(__name__)

PENDING_MAX = 1000
"""Alerts waiting for a connection; beyond, the oldest leave the lane (they stay in the buffer
and go with the data messages), counted as `overflow`."""


class AlertLane:
    """Alerts of one uplink, in the order they were raised, each sent once acknowledged."""

    def __init__(
        self, hub: HubSection, *, gateway_id: str, buffer: AsyncBuffer, lane: str = DEFAULT_LANE
    ) -> None:
        self._gateway_id = gateway_id
        self._lane = lane
        self.topic = wire.topic(hub.topic_prefix, gateway_id, wire.TOPIC_ALERT)
        self._buffer = buffer
        self._ack_on_puback = hub.protocol == "5"  # 3.1.1 brokers acknowledge what they drop
        self._heard = hub.require_subscribers
        self._pending: OrderedDict[tuple[int, int], AlertNotice] = OrderedDict()
        self._wake = asyncio.Event()
        self.sent = 0
        self.refused = 0
        self.overflow = 0

    def offer(self, notice: AlertNotice) -> None:
        """An alert reading the buffer holds (never blocks)."""
        self._pending[(notice.epoch, notice.seq)] = notice
        while len(self._pending) > PENDING_MAX:
            self._pending.popitem(last=False)
            self.overflow += 1
        self._wake.set()

    def adopt(self, other: AlertLane) -> None:
        """Take over what `other` (the uplink this one replaces) has not sent yet."""
        for notice in other._pending.values():
            self.offer(notice)

    def stats(self) -> dict[str, int]:
        """Counters for the metrics message and `citygw status`."""
        return {
            "sent": self.sent,
            "refused": self.refused,
            "pending": len(self._pending),
            "overflow": self.overflow,
        }

    async def run(self, session: HubSession, report: HubReport) -> None:
        """Publish pending alerts on `session` as they come, until cancelled; a connection
        error ends it (the alert stays pending for the next connection)."""
        while True:
            self._wake.clear()
            while self._pending:
                key, notice = next(iter(self._pending.items()))
                try:
                    await session.publish(
                        self.topic, self._payload(notice), retain=False, heard=self._heard
                    )
                except PublishRefused as error:
                    report.refused(error.topic, error.code, error.name)
                    self.refused += 1
                    self._pending.pop(key, None)  # the data messages carry it
                    continue
                report.accepted(self.topic)
                if self._ack_on_puback:
                    await self._buffer.ack(notice.seq, notice.seq, lane=self._lane)
                self.sent += 1
                self._pending.pop(key, None)
                log.info(
                    "alert %s %s sent (key %d/%d)",
                    notice.event.rule,
                    "raised" if notice.event.raised else "cleared",
                    notice.epoch,
                    notice.seq,
                    extra={"event": "alert_sent"},
                )
            await self._wake.wait()

    def _payload(self, notice: AlertNotice) -> bytes:
        event = notice.event
        return wire.encode_alert(
            gateway_id=self._gateway_id,
            rule=event.rule,
            raised=event.raised,
            source=event.source,
            quantity=event.quantity,
            unit=event.unit,
            value=event.value,
            threshold=event.threshold,
            rate_per_min=event.rate_per_min,
            ts_ms=event.ts_ms,
            epoch=notice.epoch,
            seq=notice.seq,
            clock_synced=notice.clock_synced,
        )
