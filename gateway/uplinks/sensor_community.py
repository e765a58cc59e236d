"""The `sensor.community` uplink: the push API airRohr nodes use, one POST per sensor family.

What an airRohr node sends (opendata-stuttgart/sensors-software, airrohr-firmware: `sendData`
and `sendSensorCommunity` in airrohr-firmware.ino, pins in ext_def.h):

    POST /v1/push-sensor-data/   Content-Type: application/json
    X-Sensor: esp8266-12345678   (the node's id: the uplink's `sensor_id`)
    X-Pin: 1                     (which sensor of the node: 1 PM, 7 SHT3x/DHT22/HTU21D,
                                  11 BME280, 3 BMP280)
    {"software_version": "...", "sensordatavalues": [{"value_type": "P1", "value": "12.30"}, ...]}

One POST per sensor family per measurement time. PM (SDS011, PMS, BTHome): P0 = PM1,
P1 = PM10, P2 = PM2.5 on pin 1. Climate: temperature, humidity and pressure (in Pa) on pin 11
(BME280) when all three were measured; temperature and pressure on pin 3 (BMP280); temperature
and humidity on pin 7. Other quantities have no value_type there: they are skipped, counted
and logged once each. The body also carries `timestamp` (the reading's time), which the API's
serializer accepts (feinstaub-api `SensorDataSerializer`), so a backlog lands at its real time.

HTTP errors and 429 become DeliveryError (429 with its Retry-After): the readings stay in the
buffer. The API has no keys, so a POST that got no answer may be stored twice when it is sent
again (at least once); what this process posted is remembered (`RecentKeys`) and not sent again.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol
from urllib.parse import urlsplit

from gateway.uplinks.destination import DeliveryError, OutgoingReading
from gateway.uplinks.http_client import HttpClient, HttpError, HttpSection, http_client, iso_ms
from gateway.uplinks.recent import RecentKeys

log = logging.getLogger(__name__)

DEFAULT_URL: Final = "https://api.sensor.community/v1/push-sensor-data/"
PIN_PM: Final = 1
PIN_BMP280: Final = 3
PIN_TEMP_HUMIDITY: Final = 7
PIN_BME280: Final = 11

# (quantity, unit) -> (value_type, factor to the API's unit)
PM: Final[dict[tuple[str, str], tuple[str, float]]] = {
    ("pm1_0_ugm3", "ug/m3"): ("P0", 1.0),
    ("pm1_0", "ug/m3"): ("P0", 1.0),
    ("pm2_5_ugm3", "ug/m3"): ("P2", 1.0),
    ("pm2_5", "ug/m3"): ("P2", 1.0),
    ("pm10_ugm3", "ug/m3"): ("P1", 1.0),
    ("pm10", "ug/m3"): ("P1", 1.0),
}
CLIMATE: Final[dict[tuple[str, str], tuple[str, float]]] = {
    ("temperature_c", "Cel"): ("temperature", 1.0),
    ("temperature", "Cel"): ("temperature", 1.0),
    ("humidity_pct", "%"): ("humidity", 1.0),
    ("humidity", "%"): ("humidity", 1.0),
    ("pressure_hpa", "hPa"): ("pressure", 100.0),  # the API wants Pa
    ("pressure", "hPa"): ("pressure", 100.0),
    ("pressure_pa", "Pa"): ("pressure", 1.0),
}


@dataclass(frozen=True, slots=True)
class Post:
    """One request: a sensor family's values at one measurement time."""

    source: str
    pin: int
    ts_ms: int
    values: tuple[tuple[str, str], ...]  # (value_type, value as the firmware writes it)
    readings: tuple[OutgoingReading, ...] = field(default=(), compare=False, repr=False)

    def body(self, software_version: str) -> bytes:
        """The JSON body, as an airRohr node writes it (plus the measurement's timestamp)."""
        document = {
            "software_version": software_version,
            "sensordatavalues": [{"value_type": t, "value": v} for t, v in self.values],
            "timestamp": iso_ms(self.ts_ms),
        }
        return json.dumps(document, separators=(",", ":")).encode()


@dataclass(slots=True)
class SensorCommunityStats:
    """What this destination did, for status and metrics."""

    posts: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # quantity -> readings skipped
    not_again: int = 0  # readings this process delivered already (a batch sent again)
    pin_conflicts: int = 0  # readings of a second source on a pin another source holds
    warned: set[tuple[int, str]] = field(default_factory=set, repr=False)  # (pin, source) logged


def families(
    batch: Sequence[OutgoingReading], stats: SensorCommunityStats, pin_owner: dict[int, str]
) -> list[Post]:
    """The POSTs `batch` makes, in time order; unmapped quantities are counted. `pin_owner`
    (kept by the caller) gives each pin to the first source that used it."""
    kept = []
    for post in sorted(_posts(batch, stats), key=lambda p: (p.ts_ms, p.pin)):
        holder = pin_owner.setdefault(post.pin, post.source)
        if holder == post.source:
            kept.append(post)
            continue
        stats.pin_conflicts += len(post.readings)
        if (post.pin, post.source) not in stats.warned:
            stats.warned.add((post.pin, post.source))
            log.warning(
                "sensor.community pin %d already carries %s: %s skipped (one source per pin)",
                post.pin,
                holder,
                post.source,
            )
    return kept


def _posts(batch: Sequence[OutgoingReading], stats: SensorCommunityStats) -> list[Post]:
    """Group mapped readings per (source, time) into a PM and a climate family. A value the
    family has already (two frames read in one go share their time) starts another POST: one
    value would overwrite the other, and both readings would count as delivered."""
    groups: list[tuple[tuple[str, int, bool], dict[str, str], list[OutgoingReading]]] = []
    latest: dict[tuple[str, int, bool], int] = {}  # (source, time, PM?) -> its last group
    for reading in batch:
        key = (reading.quantity, reading.unit)
        mapped, is_pm = PM.get(key), True
        if mapped is None:
            mapped, is_pm = CLIMATE.get(key), False
        if mapped is None or not math.isfinite(reading.value):
            stats.skipped[reading.quantity] = stats.skipped.get(reading.quantity, 0) + 1
            if stats.skipped[reading.quantity] == 1:
                log.info("sensor.community has no value_type for %s: skipped", reading.quantity)
            continue
        value_type, factor = mapped
        where = (reading.source, reading.ts_ms, is_pm)
        at = latest.get(where)
        if at is None or value_type in groups[at][1]:
            at = latest[where] = len(groups)
            groups.append((where, {}, []))
        groups[at][1][value_type] = f"{reading.value * factor:.2f}"
        groups[at][2].append(reading)
    posts = []
    for (source, ts, is_pm), found, used in groups:
        if is_pm:
            pin = PIN_PM
        elif "pressure" in found:
            pin = PIN_BME280 if "humidity" in found else PIN_BMP280
        else:
            pin = PIN_TEMP_HUMIDITY
        values = tuple(sorted(found.items()))
        posts.append(Post(source, pin, ts, values, tuple(used)))
    return posts


class SensorCommunity:
    """Delivers batches to the sensor.community push API (protocol `Destination`)."""

    def __init__(
        self, name: str, client: HttpClient, *, sensor_id: str, software_version: str
    ) -> None:
        if not sensor_id:
            raise ValueError("sensor_id: sensor.community needs the node's id (X-Sensor)")
        self.name = name
        self._client = client
        self._sensor_id = sensor_id
        self._software_version = software_version[:100]
        self._target = "/" if urlsplit(client.base_url).path.endswith("/") else ""
        self._pin_owner: dict[int, str] = {}
        self._recent = RecentKeys()
        self.stats = SensorCommunityStats()

    async def close(self) -> None:
        """Closes the connection."""
        await self._client.close()

    async def deliver(self, batch: Sequence[OutgoingReading]) -> None:
        """One POST per family and measurement time; DeliveryError at the first that fails."""
        fresh = [r for r in batch if r not in self._recent]
        self.stats.not_again += len(batch) - len(fresh)
        sent: list[OutgoingReading] = []
        try:
            for post in families(fresh, self.stats, self._pin_owner):
                await self._send(post)
                sent.extend(post.readings)
        finally:  # what went out is not sent again should the batch come back
            self._recent.add(sent)

    async def _send(self, post: Post) -> None:
        headers = [
            ("Content-Type", "application/json"),
            ("X-Sensor", self._sensor_id),
            ("X-Pin", str(post.pin)),
        ]
        try:
            response = await self._client.request(
                "POST", self._target, body=post.body(self._software_version), headers=headers
            )
        except HttpError as e:
            raise DeliveryError(f"sensor.community: {e}") from e
        status = response.status
        if 200 <= status < 300:
            self.stats.posts += 1
            return
        detail = response.body[:200].decode("utf-8", "replace")
        message = f"sensor.community: HTTP {status} for pin {post.pin} ({post.source}): {detail}"
        if status == 429:
            raise DeliveryError(message, retry_after_s=response.retry_after_s())
        refused = 400 <= status < 500 and status != 408
        raise DeliveryError(message, retry_after_s=response.retry_after_s(), refused=refused)


class SensorCommunitySection(HttpSection, Protocol):
    """An `[[uplinks]]` record with format "sensor.community"."""

    @property
    def sensor_id(self) -> str:
        """The node's id, sent as X-Sensor (e.g. "raspi-0000001" or "esp8266-12345678")."""
        ...


def destination(
    section: SensorCommunitySection, *, gateway_id: str, version: str = ""
) -> SensorCommunity:
    """The `sensor.community` destination of an `[[uplinks]]` record."""
    client = http_client(section, user_agent=f"citygw/{version or 'dev'}/{gateway_id}")
    return SensorCommunity(
        section.name,
        client,
        sensor_id=section.sensor_id,
        software_version=f"citygw-{version or 'dev'}",
    )


if TYPE_CHECKING:  # mypy checks that the config's record has every field this format reads
    from gateway.config import UplinkSection

    def _uplink_section_fits(section: UplinkSection) -> SensorCommunitySection:
        return section
