"""The `citygw` command line: one entry point, a subcommand per job (table in README.md)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway import __version__
from gateway.config import ConfigError, SerialSourceConfig, json_schema, load_config, load_document

if TYPE_CHECKING:
    from drivers import Driver, Frame


def _setup_logging(level: str, *, gateway_id: str = "") -> None:
    """Plain lines on stderr; under systemd straight to journald, with fields (journal.py)."""
    from gateway.system.journal import log_handler

    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[log_handler(fields={"CITYGW_GATEWAY": gateway_id} if gateway_id else None)],
    )
    logging.getLogger("citygw.mqtt").setLevel(logging.WARNING)


def _iso(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def cmd_run(args: argparse.Namespace) -> int:
    from gateway.agent import AgentAlreadyRunning, run

    document = load_document(args.config)
    config = load_config(args.config)
    _setup_logging(args.log_level or config.gateway.log_level, gateway_id=config.gateway.id)
    try:
        run(config, document)
    except AgentAlreadyRunning as error:
        print(f"citygw: {error}", file=sys.stderr)
        return 1
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    config = load_config(args.file)
    hub = config.hub
    missing = [
        f"hub.{key}: cannot read {path}"
        for key, path in (
            ("ca_file", hub.ca_file),
            ("cert_file", hub.cert_file),
            ("key_file", hub.key_file),
            ("password_file", hub.password_file),
        )
        if path and not os.access(path, os.R_OK)
    ]
    for problem in missing:
        print(f"citygw: invalid config: {args.file}: {problem}", file=sys.stderr)
    for index, source in enumerate(config.sources):
        if isinstance(source, SerialSourceConfig) and not Path(source.port).exists():
            print(
                f"note: sources[{index}].port: {source.port} does not exist now (the agent "
                "waits for it)",
                file=sys.stderr,
            )
    if missing:
        return 2
    print(
        f"{args.file}: OK (gateway {config.gateway.id}, {len(config.sources)} sources, "
        f"hub {config.hub.url})"
    )
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(json_schema(), indent=2))
    return 0


def _bind_key(text: str) -> bytes:
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 16:
        raise ValueError(f"--key: a bind key is 32 hex digits (16 bytes), got {text!r}")
    return key


def _frame_decoder(driver: Driver, args: argparse.Namespace) -> Callable[[bytes], Frame]:
    """The driver's one-frame decoder; for bthome with the --mac and --key given (ValueError if
    they are malformed or given to another driver)."""
    if driver.name != "bthome":
        if args.mac or args.key:
            raise ValueError("--mac and --key are for the bthome driver only")
        return driver.decode_frame
    from drivers import bthome
    from drivers.ble import parse_mac

    mac = parse_mac(args.mac) if args.mac else None
    key = _bind_key(args.key) if args.key else None
    return functools.partial(bthome.decode, mac=mac, key=key)


def _identity(frame: Frame) -> dict[str, object]:
    """What identifies the sensor or the measurement, where the frame knows it."""
    from drivers.ble import format_mac

    identity: dict[str, object] = {}
    device_id = getattr(frame, "device_id", None)
    if isinstance(device_id, int):
        identity["device_id"] = f"{device_id:04x}"
    mac = getattr(frame, "mac", None)
    if isinstance(mac, bytes | str):
        identity["mac"] = format_mac(mac) if isinstance(mac, bytes) else mac
    for name in ("packet_id", "counter", "sequence"):
        value = getattr(frame, name, None)
        if isinstance(value, int):
            identity[name] = value
    return identity


def _json_bytes(value: object) -> str:
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def cmd_decode(args: argparse.Namespace) -> int:
    from drivers import DRIVERS, get_driver
    from drivers.base import DecodeError
    from drivers.bthome import KeyRequired

    try:
        driver = get_driver(args.driver)
    except KeyError:
        print(
            f"citygw decode: unknown driver {args.driver!r}; known: {', '.join(DRIVERS)}",
            file=sys.stderr,
        )
        return 2
    try:
        decode = _frame_decoder(driver, args)
    except ValueError as error:
        print(f"citygw decode: {error}", file=sys.stderr)
        return 2
    text = "".join(args.hex.split()).removeprefix("0x")
    try:
        data = bytes.fromhex(text)
    except ValueError:
        print(f"citygw decode: not hexadecimal: {args.hex!r}", file=sys.stderr)
        return 2
    try:
        frame = decode(data)
    except KeyRequired as error:
        print(
            f"citygw decode: {args.driver}: {error}. Pass --key HEX and --mac MAC to decrypt it",
            file=sys.stderr,
        )
        return 1
    except DecodeError as error:
        print(f"citygw decode: {args.driver}: {error}", file=sys.stderr)
        return 1
    identity = _identity(frame)
    if not frame.measurements:  # a valid frame without readings: a command, a reply, a text
        fields = {
            name: getattr(frame, name)
            for name in getattr(frame, "__slots__", ())
            if name != "measurements"
        }
        print(
            json.dumps(
                {"driver": driver.name, "frame": type(frame).__name__, **fields, **identity},
                default=_json_bytes,
            )
        )
    for m in frame.measurements:
        print(
            json.dumps(
                {
                    "driver": driver.name,
                    "quantity": m.quantity,
                    "value": m.value,
                    "unit": m.unit,
                    **identity,
                }
            )
        )
    return 0


def _print_event(event: Any, *, as_json: bool) -> None:
    if event.kind == "data":
        for r in event.readings:
            if as_json:
                print(json.dumps(r.as_json()), flush=True)
            else:
                clock = "" if r.clock_synced else " (clock unsynced)"
                print(
                    f"{_iso(r.ts_ms)} {r.gateway} {r.source} {r.quantity} = {r.value:g} "
                    f"{r.unit}{clock}",
                    flush=True,
                )
    elif not as_json:
        detail = event.error if event.kind == "invalid" else json.dumps(event.fields)
        print(f"-- {event.kind} from {event.gateway}: {detail}", flush=True)


def cmd_hub_tail(args: argparse.Namespace) -> int:
    from gateway.hub.tail import HubOptions, events

    password = os.environ.get("CITYGW_HUB_PASSWORD") or None
    options = HubOptions(
        url=args.url,
        topic_prefix=args.topic_prefix,
        client_id=args.client_id,
        username=args.username,
        password=password,
        ca_file=args.ca_file,
    )

    async def tail() -> None:
        async for event in events(options):
            _print_event(event, as_json=args.json)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(tail())
    return 0


def cmd_status(args: argparse.Namespace) -> int:
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
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        print(_format_status(status))
    return 0


def _buffer_at_rest(path: Path) -> dict[str, Any]:
    """Buffer figures read straight from the file (read-only), when no agent is running."""
    if not path.exists():
        return {"depth": 0, "note": "no buffer yet"}
    import sqlite3

    from gateway.store.at_rest import at_rest

    try:
        depth, oldest, dropped = at_rest(path)
    except sqlite3.Error as error:  # locked by an agent; or a crash left a WAL to read, which
        # needs write access to the directory (the citygw user or root)
        return {"depth": None, "note": f"cannot read {path}: {error}"}
    return {
        "depth": depth,
        "dropped": dropped,
        "oldest_unsent_age_s": None if oldest is None else round(time.time() - oldest / 1000, 1),
    }


def _format_status(status: dict[str, Any]) -> str:
    lines = [f"gateway {status['gateway']}: agent {status['agent']}"]
    if "uptime_s" in status:
        lines.append(
            f"  up {status['uptime_s']} s, RSS {status['rss_bytes'] / 1e6:.1f} MB, "
            f"clock {'synchronised' if status['clock_synced'] else 'NOT synchronised'}"
        )
    buffer = status["buffer"]
    oldest = buffer.get("oldest_unsent_age_s")
    if buffer["depth"] is None:
        lines.append(f"  buffer: unknown ({buffer['note']})")
    else:
        lines.append(
            f"  buffer: {buffer['depth']} readings waiting"
            + (f", oldest {oldest} s old" if oldest is not None else "")
            + f", {buffer.get('dropped', 0)} dropped"
        )
    uplink = status.get("uplink")
    if uplink:
        state = "connected" if uplink["connected"] else f"DISCONNECTED ({uplink['last_error']})"
        lines.append(
            f"  uplink: {state}, {uplink['readings_out']} readings in "
            f"{uplink['messages_out']} messages, {uplink['reconnects']} reconnects"
        )
    if "config_version" in status:
        version = status["config_version"]
        where = "the local file" if version == 0 else f"pushed version {version}"
        lines.append(f"  config: {where}")
    for name, source in status.get("sources", {}).items():
        if source.get("type") == "ble":
            lines.append(
                f"  source {name} (BLE on {source['adapter']}, {source['devices']} "
                f"devices): {source['state']}, {source['readings']} readings, "
                f"{source['decode_errors']} decode errors"
            )
        else:
            lines.append(
                f"  source {name} ({source['driver']} on {source['port']}): "
                f"{source['state']}, {source['readings']} readings, "
                f"{source['bad_frames']} bad frames, {source['reopens']} reopens"
            )
    return "\n".join(lines)


def cmd_bench_wire(args: argparse.Namespace) -> int:
    from gateway.devtools.wirebench import format_report, read_rows, replay

    sensors = set(args.sensors.split(",")) if args.sensors else None
    try:
        stats = replay(
            read_rows(Path(args.readings), sensors=sensors),
            flush_seconds=args.flush_seconds,
            wire_format=args.format,
            topic_alias=not args.no_topic_alias,
            connection_hours=args.connection_hours,
        )
    except (OSError, ValueError) as error:
        print(f"citygw bench wire: {error}", file=sys.stderr)
        return 2
    if stats.readings == 0:
        print("citygw bench wire: no readings (check --sensors)", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(stats.as_dict(args.flush_seconds)))
    else:
        print(format_report(stats, args.flush_seconds), end="")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.devtools.demo import run_demo

    return run_demo(seconds=args.seconds)


def _interval_s(text: str) -> int:
    value = int(text)
    if not 5 <= value <= 86400:
        raise argparse.ArgumentTypeError("the firmware takes 5..86400 s")
    return value


def _node_id(text: str) -> int:
    value = int(text, 0)
    if not 0 <= value <= 0xFFFE:
        raise argparse.ArgumentTypeError("a node id is 0..65534 (0xFFFF is broadcast)")
    return value


def cmd_node_simulate(args: argparse.Namespace) -> int:
    from gateway.devtools.sim_node import SimulatorUnavailable, simulate

    _setup_logging(args.log_level)
    try:
        return asyncio.run(simulate(args.port, interval_s=args.interval_s, node_id=args.node_id))
    except SimulatorUnavailable as error:
        print(f"citygw node simulate: {error}", file=sys.stderr)
        return 1


def _target(args: argparse.Namespace) -> dict[str, str]:
    if getattr(args, "gateway", None):
        return {"gateway": args.gateway}
    if getattr(args, "group", None):
        return {"group": args.group}
    return {}


def cmd_keys_generate(args: argparse.Namespace) -> int:
    from gateway.remote import signing

    try:
        private, public = signing.generate(Path(args.out), args.name)
    except FileExistsError as error:
        print(f"citygw keys generate: {error}", file=sys.stderr)
        return 1
    kid = signing.key_id(signing.load_public(public))
    print(
        f"private key: {private} (keep it offline; mode 0600)\npublic key:  {public} "
        f"(install on gateways, list in [remote_config] trusted_keys)\nkey id:      {kid}"
    )
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    from gateway.hub import fleet
    from gateway.remote import signing

    private = signing.load_private(args.key)
    payload = fleet.sign_rotation(private, args.trust, version=args.version, target=_target(args))
    return _write_payload(payload, args.output)


def _write_payload(payload: bytes, output: str | None) -> int:
    if output is None or output == "-":
        sys.stdout.buffer.write(payload + b"\n")
    else:
        Path(output).write_bytes(payload)
        print(
            f"{output}: {len(payload)} bytes, sha256 {hashlib.sha256(payload).hexdigest()}",
            file=sys.stderr,
        )
    return 0


def _signed_config(args: argparse.Namespace) -> bytes:
    from gateway.hub import fleet
    from gateway.remote import signing

    document = fleet.read_document(args.file)
    if args.base_version is None:
        fleet.validate_document(document, file=args.file)
    private = signing.load_private(args.key)
    return fleet.sign_config(
        private,
        document,
        version=args.version,
        target=_target(args),
        base_version=args.base_version,
    )


def cmd_config_sign(args: argparse.Namespace) -> int:
    return _write_payload(_signed_config(args), args.output)


def cmd_config_push(args: argparse.Namespace) -> int:
    from gateway.hub import fleet
    from gateway.hub.tail import HubOptions

    if args.signed:
        payload = Path(args.file).read_bytes()  # may be anything: the gateways judge it
    elif args.key:
        payload = _signed_config(args)
    else:
        print(
            "citygw config push: give --key PRIVATE to sign FILE, or --signed for a payload "
            "signed offline",
            file=sys.stderr,
        )
        return 2
    target = _target(args)
    options = HubOptions(
        url=args.url,
        topic_prefix=args.topic_prefix,
        client_id=f"citygw-push-{os.getpid()}",
        username=args.username,
        password=os.environ.get("CITYGW_HUB_PASSWORD") or None,
        ca_file=args.ca_file,
        persistent=False,
    )
    started = time.monotonic()

    def show(answer: Any) -> None:
        print(
            f"{answer.after_s:7.2f}s  {answer.gateway:<24} {answer.result:<12} {answer.detail}",
            flush=True,
        )

    try:
        outcome = asyncio.run(
            fleet.push(
                options,
                payload,
                target=target,
                timeout_s=args.timeout,
                expect=args.expect,
                on_answer=show,
            )
        )
    except LookupError as error:
        print(f"citygw config push: {error}", file=sys.stderr)
        return 1
    except (fleet.BrokerError, ValueError) as error:
        print(f"citygw config push: broker {args.url}: {error}", file=sys.stderr)
        return 1
    for gateway in outcome.missing:
        why = (
            "offline (the retained push waits for it)"
            if gateway in outcome.offline
            else f"no answer within {args.timeout:g} s"
        )
        print(f"{'':8}  {gateway:<24} {'no answer':<12} {why}")
    applied = sum(a.result == "applied" for a in outcome.answers.values())
    print(
        f"{applied} of {len(outcome.expected)} gateways applied it; "
        f"{len(outcome.answers) - applied} refused or rolled back; "
        f"{len(outcome.missing)} did not answer ({time.monotonic() - started:.2f} s)"
    )
    if args.expect is not None and len(outcome.answers) < args.expect:
        print(f"expected {args.expect} answers, got {len(outcome.answers)}", file=sys.stderr)
        return 1
    return 0 if outcome.ok else 1


def cmd_config_diff(args: argparse.Namespace) -> int:
    from gateway.hub import fleet

    lines = fleet.describe_diff(fleet.read_document(args.old), fleet.read_document(args.new))
    print("\n".join(lines) if lines else "no difference")
    return 0


def _add_target(p: argparse.ArgumentParser, *, required: bool) -> None:
    target = p.add_mutually_exclusive_group(required=required)
    target.add_argument("--gateway", help="only this gateway may apply it")
    target.add_argument("--group", help="for the gateways of this group (remote_config.groups)")


def _add_signing(p: argparse.ArgumentParser) -> None:
    p.add_argument("--version", type=int, help="must increase (default: now in Unix ms)")
    p.add_argument(
        "--base-version",
        type=int,
        help="FILE is an RFC 7396 merge patch against this version in force",
    )
    p.add_argument("file", help="config document: TOML, or JSON (a signed payload with --signed)")


def cmd_node_flash(args: argparse.Namespace) -> int:
    try:
        from gateway.nodes.board import BoardError
        from gateway.nodes.flash import FIRMWARE_DIR, FlashError, flash
    except ImportError as error:  # mpremote is in the flash extra
        print(
            f"citygw node flash: {error.name} is missing: pip install 'citygw[flash]'",
            file=sys.stderr,
        )
        return 1
    from gateway.nodes.config import NodeConfigError
    from gateway.nodes.image import ImageError

    _setup_logging(args.log_level)

    def progress(line: str) -> None:
        print(line, flush=True)

    try:
        report = flash(
            port=args.port,
            board=args.board,
            node_config=Path(args.node_config),
            image=Path(args.micropython) if args.micropython else None,
            firmware_dir=Path(args.firmware) if args.firmware else FIRMWARE_DIR,
            progress=progress,
        )
    except NodeConfigError as error:
        print(
            f"citygw node flash: invalid node config: {error} (nothing was written to the "
            "board; fix the file and run again)",
            file=sys.stderr,
        )
        return 2
    except (BoardError, FlashError, ImageError) as error:
        print(f"citygw node flash: {error}", file=sys.stderr)
        return 1
    print(
        f"flashed {args.port}: {len(report.written)} written, {len(report.unchanged)} "
        f"unchanged, {len(report.removed)} removed, {len(report.verified)} verified; "
        "the board was reset",
        flush=True,
    )
    return 0


def cmd_node_monitor(args: argparse.Namespace) -> int:
    try:
        from gateway.nodes.board import BoardError, console
    except ImportError as error:
        print(
            f"citygw node monitor: {error.name} is missing: pip install 'citygw[flash]'",
            file=sys.stderr,
        )
        return 1

    def opened() -> None:
        print(f"{args.port}: the node's console (Ctrl-C to leave)", file=sys.stderr, flush=True)

    try:
        console(args.port, sys.stdout.buffer, on_open=opened)
    except BoardError as error:
        print(f"citygw node monitor: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def _terminal_columns() -> int:
    """As shutil.get_terminal_size() answers it (COLUMNS, the terminal, else 80)."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 80
    return columns if columns > 0 else 80


class _Parser(argparse.ArgumentParser):
    """argparse asks shutil for the terminal width whenever an argument is added, and shutil
    imports bz2 and lzma: ~0.5 MB of the agent's RSS for help it never prints."""

    def _get_formatter(self) -> argparse.HelpFormatter:
        formatter = self.formatter_class(prog=self.prog, width=_terminal_columns() - 2)  # type: ignore[call-arg]
        return formatter


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="citygw", description="citygw: smart-city edge gateway agent and its tools."
    )
    parser.add_argument("--version", action="version", version=f"citygw {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run the agent")
    p.add_argument("--config", required=True, help="TOML config file")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check-config", help="validate a config file")
    p.add_argument("file")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("schema", help="print the config's JSON Schema (for editors)")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("decode", help="decode one frame: prints one JSON object per reading")
    p.add_argument("driver")
    p.add_argument("hex")
    p.add_argument("--mac", help="device address (BLE drivers)")
    p.add_argument("--key", help="bind key in hex (encrypted BLE drivers)")
    p.set_defaults(func=cmd_decode)

    hub = sub.add_parser("hub", help="hub-side tools").add_subparsers(
        dest="hub_command", required=True
    )
    p = hub.add_parser("tail", help="subscribe like a hub, decode, drop duplicates, print")
    p.add_argument("--url", required=True, help="mqtt://host:port or mqtts://host:port")
    p.add_argument("--json", action="store_true", help="JSON lines, one per reading")
    p.add_argument("--topic-prefix", default="citygw/v1")
    p.add_argument("--client-id", default="", help="persistent session id (default per host)")
    p.add_argument("--username")
    p.add_argument("--ca-file", help="CA for mqtts:// (password from $CITYGW_HUB_PASSWORD)")
    p.set_defaults(func=cmd_hub_tail)

    p = sub.add_parser("status", help="what the local agent is doing")
    p.add_argument("--config", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    bench = sub.add_parser("bench", help="measurements").add_subparsers(
        dest="bench_command", required=True
    )
    p = bench.add_parser(
        "wire",
        help="bytes on the wire per reading, replaying a CSV of "
        "readings (ts,sensor_id,quantity,value) in simulated time",
    )
    p.add_argument("--readings", required=True, help="CSV or CSV.gz file")
    p.add_argument("--flush-seconds", type=float, required=True)
    p.add_argument("--sensors", help="only these sensor ids, comma-separated")
    p.add_argument("--format", type=int, choices=[1, 2, 3], default=1, help="wire format version")
    p.add_argument(
        "--no-topic-alias",
        action="store_true",
        help="the full data topic in every message (a broker without topic aliases)",
    )
    p.add_argument(
        "--connection-hours",
        type=float,
        default=24.0,
        help="how long a connection lasts (a birth and the full topic each time)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench_wire)

    p = sub.add_parser("demo", help="the whole system on simulated sensors and a local broker")
    p.add_argument("--seconds", type=float, default=None, help="stop by itself after N seconds")
    p.set_defaults(func=cmd_demo)

    node = sub.add_parser("node", help="sensor-node tools").add_subparsers(
        dest="node_command", required=True
    )
    p = node.add_parser(
        "simulate",
        help="a virtual node: the real firmware in MicroPython with its UART on a pseudo-terminal",
    )
    p.add_argument("--port", help="put a symlink to the pty here (e.g. /tmp/ttyNODE0)")
    p.add_argument("--interval-s", type=_interval_s, default=60, help="node.json interval_s")
    p.add_argument("--node-id", type=_node_id, default=17, help="node.json node_id")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")
    p.set_defaults(func=cmd_node_simulate)

    keys = sub.add_parser("keys", help="config-signing keys").add_subparsers(
        dest="keys_command", required=True
    )
    p = keys.add_parser("generate", help="a new Ed25519 key pair: NAME.key and NAME.pub")
    p.add_argument("--out", required=True, help="directory for the key files")
    p.add_argument("--name", default="ops")
    p.set_defaults(func=cmd_keys_generate)
    p = keys.add_parser(
        "rotate", help="sign a key rotation: gateways then trust exactly the --trust keys"
    )
    p.add_argument("--key", required=True, help="a private key the gateways trust now")
    p.add_argument("--trust", required=True, action="append", help="public key (repeatable)")
    p.add_argument("--version", type=int, help="must increase (default: now in Unix ms)")
    p.add_argument("-o", "--output", help="file for the payload (default: stdout)")
    _add_target(p, required=False)
    p.set_defaults(func=cmd_keys_rotate)

    config = sub.add_parser("config", help="remote config: sign, push, diff").add_subparsers(
        dest="config_command", required=True
    )
    p = config.add_parser(
        "sign", help="sign a config offline; the output is the exact payload for config/set"
    )
    p.add_argument("--key", required=True, help="private key file")
    p.add_argument("-o", "--output", help="file for the payload (default: stdout)")
    _add_target(p, required=False)
    _add_signing(p)
    p.set_defaults(func=cmd_config_sign, signed=False)
    p = config.add_parser(
        "push",
        help="publish a signed config and wait for each gateway's "
        "report; exits 1 if any refused or did not answer",
    )
    p.add_argument("--url", required=True, help="mqtt://host:port or mqtts://host:port")
    p.add_argument("--key", help="private key file (sign FILE now)")
    p.add_argument("--signed", action="store_true", help="FILE is a payload from config sign")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for reports")
    p.add_argument(
        "--expect",
        type=int,
        help="wait for at least N answers (gateways that have not reported their group yet)",
    )
    p.add_argument("--topic-prefix", default="citygw/v1")
    p.add_argument("--username")
    p.add_argument("--ca-file", help="CA for mqtts:// (password from $CITYGW_HUB_PASSWORD)")
    _add_target(p, required=True)
    _add_signing(p)
    p.set_defaults(func=cmd_config_push)
    p = config.add_parser(
        "diff", help="what changes between two configs, and what a gateway would restart"
    )
    p.add_argument("old")
    p.add_argument("new")
    p.set_defaults(func=cmd_config_diff)
    p = node.add_parser(
        "flash",
        help="MicroPython (optional), the firmware and node.json onto "
        "a board, verified by SHA-256 (docs/flashing.md)",
    )
    p.add_argument("--port", required=True, help="the board's serial port, e.g. /dev/ttyUSB0")
    p.add_argument(
        "--board",
        required=True,
        choices=["esp32", "rp2"],
        help="esp32 (ESP32_GENERIC boards) or rp2 (Pico, Pico W)",
    )
    p.add_argument(
        "--node-config",
        required=True,
        metavar="FILE",
        help="the node.json to put on the board (checked first)",
    )
    p.add_argument(
        "--micropython",
        metavar="IMAGE",
        help="write this MicroPython image first (.bin for esp32, .uf2 for rp2)",
    )
    p.add_argument(
        "--firmware",
        metavar="DIR",
        help="the firmware folder (default: this checkout's firmware/, else the "
        "copy in the installed package)",
    )
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="warning")
    p.set_defaults(func=cmd_node_flash)

    p = node.add_parser("monitor", help="show a node's console output (Ctrl-C to leave)")
    p.add_argument("--port", required=True, help="the board's serial port")
    p.set_defaults(func=cmd_node_monitor)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as error:
        print(f"citygw: {error.what}: {error}", file=sys.stderr)
        return 2

    except BrokenPipeError:
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
