"""What `citygw demo` prints for a reading, the register and the health: compact, labelled,
within the width it is given."""

from __future__ import annotations

from gateway.devtools.demo_view import COLUMNS, format_values, health_lines, register_lines

PMS5003 = {
    "pm1_0_cf1_ugm3": 11,
    "pm2_5_cf1_ugm3": 17,
    "pm10_cf1_ugm3": 22,
    "pm1_0_ugm3": 11,
    "pm2_5_ugm3": 16,
    "pm10_ugm3": 20,
    "n0_3_per_dl": 1793,
    "n0_5_per_dl": 574,
    "n1_0_per_dl": 144,
    "n2_5_per_dl": 25,
    "n5_0_per_dl": 5,
    "n10_per_dl": 2,
}


def test_a_pms5003_reading_is_mass_on_one_line_and_counts_on_the_next() -> None:
    assert format_values(PMS5003, width=64) == [
        "PM1 11  PM2.5 16  PM10 20 ug/m3 (CF=1: 11 17 22)",
        "count/0.1L >0.3um 1793 >0.5 574 >1 144 >2.5 25 >5 5 >10 2",
    ]


def test_other_quantities_follow_the_mass_and_wrap_at_the_width() -> None:
    values = {"pm2_5_ugm3": 15.3, "pm10_ugm3": 25.4, "temperature_c": 21.2, "humidity_pct": 22.4}
    assert format_values(values, width=60) == [
        "PM2.5 15.3  PM10 25.4 ug/m3 temperature_c=21.2",
        "humidity_pct=22.4",
    ]


def test_a_sensor_without_particulates_shows_quantity_equals_value() -> None:
    assert format_values({"battery_pct": 87, "temperature_c": 11.46}, width=80) == [
        "battery_pct=87 temperature_c=11.46"
    ]


def test_the_register_is_a_line_per_source_with_owner_theme_and_purpose_within_the_width() -> None:
    register = {
        "v": 1,
        "gateway": "gw-demo",
        "owner": "gemeente",
        "sources": [
            {
                "source": "pm-south",
                "owner": "burgermeetnet",
                "type": "serial",
                "quantities": [{"quantity": "pm2_5_ugm3", "unit": "ug/m3"}],
                "register": {"purpose": "Fijnstof bij de school " * 10, "theme": "Air"},
            },
            {"source": "ble", "owner": "gemeente", "type": "ble", "register": None},
        ],
    }
    lines = register_lines(register)
    assert lines[1].startswith("   pm-south (burgermeetnet, Air): Fijnstof bij de school")
    assert lines[1].endswith("...") and len(lines[1]) == COLUMNS
    assert lines[2] == "   ble (gemeente, ble): (no register record)"


def test_the_health_shows_each_uplink_sent_and_waiting_on_a_line_of_its_own() -> None:
    metrics = {
        "gw": "gw-demo",
        "buffer": {"depth": 3, "dropped": 0},
        "uplinks": {
            "hub": {"connected": True, "sent": 34, "backlog": 3},
            "burgers-sta": {"connected": False, "sent": 0, "backlog": 12},
        },
    }
    text = "\n".join(health_lines(metrics))
    assert "   buffer: 3 waiting, 0 dropped\n" in text
    assert "   uplinks (readings sent, waiting): hub 34, 3; burgers-sta (down) 0, 12" in text
