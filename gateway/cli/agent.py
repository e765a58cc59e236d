"""`citygw run`, `check-config`, `schema` and `status`: the agent on a gateway, and its config."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from gateway.cli.base import LOG_LEVELS, Commands, age_text, setup_logging
from gateway.config import (
    DEFAULT_PATH,
    ModbusSourceConfig,
    SerialSourceConfig,
    json_schema,
    load_config,
    load_document,
)


def add_commands(commands: Commands) -> None:
    """Add run, check-config, schema and status."""
    p = commands.add("run", help="run the agent", handler=cmd_run)
    p.add_argument(
        "--config", default=str(DEFAULT_PATH), help="TOML config file (default: %(default)s)"
    )
    p.add_argument("--log-level", choices=LOG_LEVELS)

    p = commands.add("check-config", help="validate a config file", handler=cmd_check_config)
    p.add_argument("file")

    commands.add("schema", help="print the config's JSON Schema (for editors)", handler=cmd_schema)

    p = commands.add("status", help="what the local agent is doing", handler=cmd_status)
    p.add_argument(
        "--config",
        default=str(DEFAULT_PATH),
        help="the agent's config: where its status socket and buffer are (default: %(default)s)",
    )
    p.add_argument("--json", action="store_true")


def cmd_run(args: argparse.Namespace) -> int:
    """Run the agent until SIGTERM; 1 if another agent already runs on this data directory."""
    from gateway.agent import AgentAlreadyRunning, run

    document = load_document(args.config)
    config = load_config(args.config)
    setup_logging(args.log_level or config.gateway.log_level, gateway_id=config.gateway.id)
    try:
        run(config, document)
    except AgentAlreadyRunning as error:
        print(f"citygw: {error}", file=sys.stderr)
        return 1
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate FILE and the files it names; 2 if the agent could not start with it."""
    config = load_config(args.file)
    sections: list[tuple[str, object]] = [("hub", config.hub)]
    sections += [(f"uplinks[{i}]", uplink) for i, uplink in enumerate(config.uplinks)]
    missing = [
        f"{where}.{key}: cannot read {path}"
        for where, section in sections
        for key in ("ca_file", "cert_file", "key_file", "password_file")
        if (path := getattr(section, key)) and not os.access(path, os.R_OK)
    ]
    for problem in missing:
        print(f"citygw: invalid config: {args.file}: {problem}", file=sys.stderr)
    for index, source in enumerate(config.sources):
        if (
            isinstance(source, SerialSourceConfig | ModbusSourceConfig)
            and not Path(source.port).exists()
        ):
            print(
                f"note: sources[{index}].port: {source.port} does not exist now (the agent "
                "waits for it)",
                file=sys.stderr,
            )
    if missing:
        return 2
    print(
        f"{args.file}: OK (gateway {config.gateway.id}, {len(config.sources)} sources, "
        f"hub {config.hub.url}"
        + "".join(f", uplink {u.name} {u.url}" for u in config.uplinks)
        + ")"
    )
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    """Print the config's JSON Schema."""
    print(json.dumps(json_schema(), indent=2))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Print the running agent's status, or the buffer's figures from disk when none runs."""
    from gateway.agent.health import read_status, status_socket_address

    config = load_config(args.config)
    status = asyncio.run(read_status(status_socket_address(config.data_dir)))
    if status is None:
        status = {
            "gateway": config.gateway.id,
            "agent": "not running",
            "buffer": _buffer_at_rest(config.data_dir / "buffer.db"),
        }
    else:
        status["agent"] = "running"
    status.setdefault("warnings", config.hub.warnings())
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        print(format_status(status))
    return 0


def _buffer_at_rest(path: Path) -> dict[str, Any]:
    """Buffer figures read straight from the file (read-only), when no agent is running."""
    if not path.exists():
        return {"depth": 0, "note": "no buffer yet"}
    from gateway.store.at_rest import BufferUnreadable, at_rest

    try:
        depth, oldest, dropped = at_rest(path)
    except BufferUnreadable as error:
        return {"depth": None, "note": f"cannot read {path}: {error}"}
    return {
        "depth": depth,
        "dropped": dropped,
        "oldest_unsent_age_s": None if oldest is None else round(time.time() - oldest / 1000, 1),
    }


def format_status(status: dict[str, Any]) -> str:
    """The status as lines for a person: agent, buffer, uplink, config, then each source."""
    lines = [f"gateway {status['gateway']}: agent {status['agent']}"]
    if "uptime_s" in status:
        lines.append(
            f"  up {status['uptime_s']} s, RSS {status['rss_bytes'] / 1e6:.1f} MB, "
            f"clock {'synchronised' if status['clock_synced'] else 'NOT synchronised'}"
        )
    lines.append(_buffer_line(status["buffer"]))
    uplink = status.get("uplink")
    if uplink:
        state = "connected" if uplink["connected"] else f"DISCONNECTED ({uplink['last_error']})"
        lines.append(
            f"  uplink: {state}, {uplink['readings_out']} readings in "
            f"{uplink['messages_out']} messages, {uplink['reconnects']} reconnects"
        )
        lines += [f"  uplink: {warning}" for warning in uplink.get("warnings", [])]
    alerts = status.get("alerts")
    if alerts and alerts.get("rules"):
        lines.append(
            f"  alerts: {alerts['rules']} rules, {alerts['active']} active; {alerts['raised']} "
            f"raised, {alerts['cleared']} cleared, {alerts['suppressed']} suppressed; sent at "
            f"once {alerts['sent']}, refused {alerts['refused']}, waiting {alerts['pending']}"
        )
    lines += [_uplink_line(name, one) for name, one in status.get("uplinks", {}).items()]
    if "config_version" in status:
        version = status["config_version"]
        where = "the local file" if version == 0 else f"pushed version {version}"
        lines.append(f"  config: {where}")
    lines += [_source_line(name, source) for name, source in status.get("sources", {}).items()]
    lines += [f"  WARNING: {warning}" for warning in status.get("warnings", [])]
    return "\n".join(lines)


def _buffer_line(buffer: dict[str, Any]) -> str:
    if buffer["depth"] is None:
        return f"  buffer: unknown ({buffer['note']})"
    oldest = buffer.get("oldest_unsent_age_s")
    return (
        f"  buffer: {buffer['depth']} readings waiting"
        + (f", oldest {oldest} s old" if oldest is not None else "")
        + f", {buffer.get('dropped', 0)} dropped"
    )


def _modbus_lines(name: str, source: dict[str, Any]) -> str:
    """The bus, then one line per meter that is not answering, losing blocks or silent."""
    meters = source.get("meters", {})
    silent = sum(meter.get("silent_for_s") is not None for meter in meters.values())
    lines = [
        f"  source {name} (Modbus on {source['port']}, {len(meters)} meters): "
        f"{source['state']}, {source['readings']} readings, "
        f"{source['meters_not_answering']} not answering, "
        + (f"{silent} SILENT, " if silent else "")
        + f"{source['reopens']} reopens"
    ]
    for meter_name, meter in meters.items():
        quiet_s = meter.get("silent_for_s")
        if meter["state"] in ("not answering", "errors") or quiet_s is not None:
            lines.append(
                f"    meter {meter_name} ({meter['model']} at address {meter['address']}): "
                + ("" if quiet_s is None else f"SILENT for {age_text(quiet_s)}, ")
                + f"{meter['state'].upper()} for {meter['silent_polls_in_row']} polls, "
                f"{meter['timeouts']} timeouts, {meter['crc_errors']} CRC errors, "
                f"{meter['exceptions']} exceptions; last: {meter['last_error']}"
            )
    return "\n".join(lines)


def _uplink_line(name: str, uplink: dict[str, Any]) -> str:
    """One uplink (the hub or an [[uplinks]] record): its own backlog, oldest, sent, drops."""
    state = "connected" if uplink.get("connected") else "DISCONNECTED"
    if not uplink.get("connected") and uplink.get("last_error"):
        state += f" ({uplink['last_error']})"
    oldest = uplink.get("oldest_unsent_age_s")
    return (
        f"  uplink {name} ({uplink.get('format', 'citygw')}): {state}, "
        f"{uplink.get('backlog', 0)} waiting"
        + (f" (oldest {oldest} s old)" if oldest is not None else "")
        + f", {uplink.get('sent', 0)} sent, {uplink.get('dropped', 0)} dropped"
    )


def _source_line(name: str, source: dict[str, Any]) -> str:
    if source.get("type") == "modbus":
        return _modbus_lines(name, source)
    if source.get("type") == "ble":
        silent = source.get("silent", {})
        return "\n".join(
            [
                f"  source {name} (BLE on {source['adapter']}, {source['devices']} "
                f"devices): {source['state']}, {source['readings']} readings, "
                + (f"{len(silent)} SILENT, " if silent else "")
                + f"{source['decode_errors']} decode errors",
                *(
                    f"    device {device}: SILENT for {age_text(quiet_s)}"
                    for device, quiet_s in silent.items()
                ),
            ]
        )
    quiet_s = source.get("silent_for_s")
    state = source["state"] if quiet_s is None else f"SILENT for {age_text(quiet_s)}"
    return (
        f"  source {name} ({source['driver']} on {source['port']}): "
        f"{state}, {source['readings']} readings, "
        f"{source['bad_frames']} bad frames, {source['reopens']} reopens"
    )
