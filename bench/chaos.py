"""make chaos: the real agent against a real Mosquitto while faults hit it on a seeded schedule.

    .venv/bin/python bench/chaos.py [--minutes 20] [--seed 1] [--json] [--keep]

One serial source (a pty) gets numbered SDS011 frames at `--rate` frames/s; a hub subscriber
(paho, MQTT 5, QoS 1, persistent session) records every reading that arrives. Faults, one at a
time, each followed by a wait (bounded) until readings of frames written after it reach the hub:
kill -9 of the agent (restarted at once), broker restarts (persistence on) and hangs (SIGSTOP),
serial unplugs, a disk-full episode on a small tmpfs (root only), garbage bytes between frames,
and an invalid config between two restarts. The accounting (bench/chaos_account.py) says what
was offered, accepted, delivered and lost, and why. bench/README.md has the details.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from bench.agent import Agent, AgentSettings, deployed_env, memory_kb
from bench.broker import mosquitto_binary, wait_listening
from bench.chaos_account import (
    RECOVERY_GOAL_S,
    Arrival,
    Fault,
    Frame,
    Run,
    account,
    frame_values,
    identify,
)
from bench.procs import BenchError, Child, Children, Deadline, Pinning, install_signal_handlers
from drivers import sds011
from gateway.devtools.sim_serial import open_pty
from gateway.wire import decode_data

HOST = "127.0.0.1"
GATEWAY_ID = "chaos-gw"
SOURCE = "pm-0"
DEVICE_ID = 0xC4A0
COMMIT_INTERVAL_MS = 1000  # the default: the documented window is 1 s
FLUSH_INTERVAL_S = 1.0
TMPFS_SIZE = "24m"
INVALID_CONFIG_LINE = 'flush_interval_s = "soon"'
INVALID_CONFIG_MESSAGE = "hub.flush_interval_s: expected a number, got a string"
KINDS = (
    "kill9",
    "broker_restart",
    "broker_hang",
    "unplug",
    "disk_full",
    "garbage",
    "invalid_config",
)


def log(text: str) -> None:
    print(f"chaos {time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def fault_counts(minutes: float) -> dict[str, int]:
    """How many faults of each kind a run of this length gets (20 min: 32 kill -9)."""
    return {
        "kill9": max(4, round(minutes * 1.6)),
        "broker_restart": max(1, round(minutes / 4)),
        "broker_hang": max(1, round(minutes / 4)),
        "unplug": max(1, round(minutes / 4)),
        "disk_full": max(1, round(minutes / 10)),
        "garbage": max(2, round(minutes / 2)),
        "invalid_config": max(1, round(minutes / 10)),
    }


def port_below_ephemeral() -> int:
    """A free port below the ephemeral range, so no client socket (the agent reconnecting
    while the broker is down) can take it and block the restart on the same port."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.Random()
    for _ in range(100):
        port = rng.randrange(10000, max(10001, low))
        with socket.socket() as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                continue
            return port
    raise BenchError("no free TCP port below the ephemeral range")


# --- the broker ----------------------------------------------------------------------------


class PersistentBroker:
    """Mosquitto with persistence (the hub's session and its queued messages survive a
    restart), on a fixed port, restarted and hung on request."""

    def __init__(self, children: Children, workdir: Path) -> None:
        self.port = port_below_ephemeral()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "mosquitto.conf"
        self.log_path = workdir / "mosquitto.log"
        lines = [
            f"listener {self.port} {HOST}",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {workdir}/",
            "autosave_interval 1",
            "max_queued_messages 1000000",
            "set_tcp_nodelay true",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "connection_messages true",
        ]
        if os.geteuid() == 0:
            lines.append("user root")
        self.config_path.write_text("\n".join(lines) + "\n")
        self._children = children
        self.child: Child | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{HOST}:{self.port}"

    def start(self, timeout_s: float = 30.0) -> None:
        self.child = self._children.start(
            "mosquitto", [mosquitto_binary(), "-c", str(self.config_path)], log_path=self.log_path
        )
        wait_listening(self.child, self.port, timeout_s)

    def stop(self) -> None:
        if self.child is not None:
            self.resume()
            self._children.stop(self.child, grace_s=20.0)

    def hang(self) -> None:
        if self.child is not None:
            os.kill(self.child.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.child is not None and self.child.running:
            os.kill(self.child.pid, signal.SIGCONT)


# --- the sensor ----------------------------------------------------------------------------


class Feeder(threading.Thread):
    """The SDS011 on the far end of the pty: frame n every 1/rate s, numbered (see
    chaos_account), whether or not anyone listens, as a sensor does. Unplug, replug and
    garbage on request. Records every frame it offers."""

    PENDING_MAX = 64 * 1024  # bytes the line may hold back before frames are dropped

    def __init__(self, link: Path, rate: float) -> None:
        super().__init__(name="chaos-feeder", daemon=True)
        self.link = link
        self.rate = rate
        self.frames: list[Frame] = []
        self.wall_index: list[int] = []
        self.attach_edges_s: list[float] = []
        self.garbage_bytes = 0
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._fd, _ = open_pty(str(link))
        self._plugged = True
        self._attached = False
        self._pending = bytearray()
        self._garbage = bytearray()
        self.error: BaseException | None = None

    def attached_now(self) -> bool:
        return self._attached

    def unplug(self) -> None:
        with self._lock:
            self._plugged = False
            self._attached = False
            self._pending.clear()
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()
            os.close(self._fd)
            self._fd = -1

    def replug(self) -> None:
        with self._lock:
            self._fd, _ = open_pty(str(self.link))
            self._plugged = True

    def garbage(self, data: bytes) -> None:
        with self._lock:
            self._garbage += data
            self.garbage_bytes += len(data)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def _check_attached(self, now: float) -> bool:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        hangup = any(events & select.POLLHUP for _, events in poller.poll(0))
        if not hangup:
            with contextlib.suppress(OSError):  # the agent's commands to the sensor
                while os.read(self._fd, 4096):
                    pass
        if not hangup and not self._attached:
            self.attach_edges_s.append(now)
        self._attached = not hangup
        return self._attached

    def _flush(self) -> None:
        while self._pending:
            try:
                written = os.write(self._fd, self._pending)
            except (BlockingIOError, OSError):
                return
            del self._pending[:written]

    def run(self) -> None:
        try:
            self._run()
        except BaseException as error:  # reported by the main thread
            self.error = error

    def _run(self) -> None:
        start = time.monotonic()
        n = 0
        while not self._halt.is_set():
            n += 1
            due = start + n / self.rate
            while (left := due - time.monotonic()) > 0:
                if self._halt.wait(min(left, 0.02)):
                    return
                with self._lock:
                    if self._plugged:
                        self._check_attached(time.monotonic())
                        self._flush()
            pm2_5, pm10 = frame_values(n)
            data = sds011.encode_data(pm2_5, pm10, device_id=DEVICE_ID)
            with self._lock:
                now, wall_ms = time.monotonic(), int(time.time() * 1000)
                written = attached = False
                if self._plugged:
                    attached = self._check_attached(now)
                    if not attached:  # a sensor does not hold its data for a closed port
                        self._pending.clear()
                    if len(self._pending) + len(self._garbage) + len(data) <= self.PENDING_MAX:
                        self._pending += self._garbage + data
                        self._garbage.clear()
                        written = True
                    self._flush()
                    if not attached:
                        self._pending.clear()
                self.frames.append(Frame(n, now, wall_ms, written, attached))
                self.wall_index.append(wall_ms)

    def first_after(self, t_s: float) -> int | None:
        """The number of the first frame offered after t_s, if there is one yet."""
        first = None
        for frame in reversed(self.frames):
            if frame.t_s <= t_s:
                break
            first = frame.n
        return first


# --- the hub -------------------------------------------------------------------------------


class Hub:
    """A hub subscriber as `citygw hub tail` is: MQTT 5, QoS 1, a persistent session
    (clean_start False, a long session expiry), so a broker restart loses nothing."""

    def __init__(self, port: int, topic: str, feeder: Feeder) -> None:
        self.topic = topic
        self.feeder = feeder
        self.arrivals: list[Arrival] = []
        self.messages = 0
        self.decode_errors = 0
        self.sessions_lost = 0
        self.max_n = 0
        self.last_arrival_s = 0.0
        self._subscribed = False
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"chaos-hub-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(min_delay=0.2, max_delay=1)  # type: ignore[arg-type]
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 86400
        self.client.connect(HOST, port, keepalive=60, clean_start=False, properties=properties)
        self.client.loop_start()

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: Any, reason: Any, properties: object
    ) -> None:
        if reason.is_failure:
            return
        if self._subscribed and not flags.session_present:
            self.sessions_lost += 1
        if not flags.session_present or not self._subscribed:
            client.subscribe(self.topic, options=SubscribeOptions(qos=1))
            self._subscribed = True

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        now = time.monotonic()
        try:
            readings = list(decode_data(bytes(msg.payload), gateway=GATEWAY_ID))
        except Exception:
            self.decode_errors += 1
            return
        with self._lock:
            self.messages += 1
            self.last_arrival_s = now
            for r in readings:
                arrival = Arrival(now, r.epoch, r.seq, r.ts_ms, r.quantity, r.value)
                self.arrivals.append(arrival)
                n = identify_now(self.feeder, arrival)
                if n is not None:
                    self.max_n = max(self.max_n, n)

    def wait_for_frame(self, n: int, timeout_s: float) -> bool:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self.max_n >= n:
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def identify_now(feeder: Feeder, arrival: Arrival) -> int | None:
    return identify(feeder.frames, feeder.wall_index, arrival)


# --- the agent's lives ---------------------------------------------------------------------


class Lives(threading.Thread):
    """Polls the running agent once a second: readings accepted (its source's count, per
    life), drops, and VmHWM (its peak RSS) from /proc."""

    def __init__(self, agent: Agent) -> None:
        super().__init__(name="chaos-status", daemon=True)
        self.agent = agent
        self.accepted: dict[int, int] = {}  # pid -> readings its source counted
        self.dropped: dict[int, int] = {}
        self.write_errors: dict[int, int] = {}
        self.hwm_kb: dict[int, int] = {}
        self.status_rss_peak: dict[int, int] = {}
        self._halt = threading.Event()

    def sample(self) -> None:
        child = self.agent.child
        if child is None or not child.running:
            return
        pid = child.pid
        with contextlib.suppress(OSError, ValueError):
            kb = memory_kb(pid).get("VmHWM", 0)
            self.hwm_kb[pid] = max(self.hwm_kb.get(pid, 0), kb)
        status = self.agent.status(timeout_s=2.0)
        if status is None:
            return
        source = status.get("sources", {}).get(SOURCE, {})
        self.accepted[pid] = max(self.accepted.get(pid, 0), int(source.get("readings", 0)))
        buffer = status.get("buffer", {})
        self.dropped[pid] = int(buffer.get("dropped", 0))
        self.write_errors[pid] = int(buffer.get("write_errors", 0))
        self.status_rss_peak[pid] = int(status.get("rss_peak_bytes", 0))

    def run(self) -> None:
        while not self._halt.wait(1.0):
            with contextlib.suppress(Exception):
                self.sample()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)


# --- the run -------------------------------------------------------------------------------


def tree_digest(root: Path, skip: set[str]) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_socket() and path.name not in skip:
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


class Chaos:
    def __init__(self, args: argparse.Namespace, workdir: Path, children: Children) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.workdir = workdir
        self.children = children
        self.deadline = Deadline(args.minutes * 60 + args.drain_timeout + 300)
        self.faults: list[Fault] = []
        self.refusals: list[dict[str, Any]] = []
        self.skipped: dict[str, str] = {}
        self.notes: list[str] = []
        self.tmpfs: Path | None = None
        self.broker = PersistentBroker(children, workdir / "broker")
        self.link = workdir / "ttyCHAOS0"
        settings = AgentSettings(
            hub_url="",
            topic_prefix=f"chaos/{uuid.uuid4().hex[:8]}",
            ports=[str(self.link)],
            flush_interval_s=FLUSH_INTERVAL_S,
            batch_max_readings=500,
            commit_max_readings=5000,
            commit_interval_ms=COMMIT_INTERVAL_MS,
            synchronous="full",
            max_readings=200_000,
            gateway_id=GATEWAY_ID,
        )
        self.settings = settings
        self.window_s = min(COMMIT_INTERVAL_MS / 1000, FLUSH_INTERVAL_S)

    # lifecycle

    def setup(self) -> None:
        self.broker.start()
        self.settings = AgentSettings(**{**self.settings.__dict__, "hub_url": self.broker.url})
        agent_dir = self.workdir / "agent"
        data_dir = agent_dir / "data"
        data_dir.mkdir(parents=True)
        counts = fault_counts(self.args.minutes)
        if counts["disk_full"]:
            if os.geteuid() != 0:
                self.skipped["disk_full"] = "not root: cannot mount a small tmpfs for data_dir"
            elif shutil.which("mount") is None:
                self.skipped["disk_full"] = "no mount(8)"
            else:
                done = subprocess.run(
                    ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700", "tmpfs",
                     str(data_dir)],
                    capture_output=True, text=True, timeout=30, check=False,
                )  # fmt: skip
                if done.returncode == 0:
                    self.tmpfs = data_dir
                else:
                    self.skipped["disk_full"] = f"mount tmpfs failed: {done.stderr.strip()}"
        env = deployed_env(self.workdir / "pycache")
        self.agent = Agent(self.children, Pinning(enabled=False), agent_dir, self.settings, env=env)
        self.feeder = Feeder(self.link, self.args.rate)
        topic = f"{self.settings.topic_prefix}/{GATEWAY_ID}/data"
        self.hub = Hub(self.broker.port, topic, self.feeder)
        self.lives = Lives(self.agent)
        self.feeder.start()
        self.agent.start()
        self.lives.start()
        log(f"broker on {self.broker.port}, agent pid {self.agent.pid}, workdir {self.workdir}")
        if not self.hub.wait_for_frame(1, self.deadline.cap(120, "waiting for the first frame")):
            raise BenchError(f"no frame reached the hub within 120 s{self.agent_log_tail()}")

    def agent_log_tail(self) -> str:
        return self.agent.child.log_tail() if self.agent.child else ""

    def teardown(self) -> None:
        for stop in (
            lambda: self.lives.stop(),
            lambda: self.agent.stop(),
            lambda: self.feeder.stop(),
            lambda: self.feeder.close(),
            lambda: self.hub.close(),
            lambda: self.broker.stop(),
        ):
            with contextlib.suppress(Exception):
                stop()
        if self.tmpfs is not None:
            subprocess.run(["umount", "-l", str(self.tmpfs)], check=False, timeout=30)

    # faults

    def schedule(self) -> list[str]:
        counts = fault_counts(self.args.minutes)
        kinds = [kind for kind, count in counts.items() for _ in range(count)]
        kinds = [k for k in kinds if k not in self.skipped]
        self.rng.shuffle(kinds)
        return kinds

    def kill9(self, fault: dict[str, Any]) -> None:
        child = self.agent.child
        assert child is not None
        self.lives.sample()  # its VmHWM and accepted count just before it dies
        fault["start"] = time.monotonic()
        os.kill(child.pid, signal.SIGKILL)
        child.proc.wait(timeout=30)
        self.agent.start()
        fault["end"] = time.monotonic()

    def broker_restart(self, fault: dict[str, Any]) -> None:
        down_s = self.rng.uniform(1.0, 6.0)
        fault["start"] = time.monotonic()
        self.broker.stop()
        time.sleep(down_s)
        self.broker.start()
        fault["end"] = time.monotonic()

    def broker_hang(self, fault: dict[str, Any]) -> None:
        hang_s = self.rng.uniform(3.0, 12.0)
        fault["start"] = time.monotonic()
        self.broker.hang()
        time.sleep(hang_s)
        self.broker.resume()
        fault["end"] = time.monotonic()

    def unplug(self, fault: dict[str, Any]) -> None:
        away_s = self.rng.uniform(2.0, 8.0)
        fault["start"] = time.monotonic()
        self.feeder.unplug()
        time.sleep(away_s)
        self.feeder.replug()
        fault["end"] = time.monotonic()

    def garbage(self, fault: dict[str, Any]) -> None:
        data = bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 96)))
        fault["start"] = time.monotonic()
        self.feeder.garbage(data)
        time.sleep(1.5 / self.args.rate)  # it goes out with the next frame
        fault["end"] = time.monotonic()
        fault["detail"] = {"bytes": len(data)}

    def orderly_stop(self) -> float | None:
        """SIGTERM the agent and wait (30 s at most, then SIGKILL); seconds it took, or None."""
        child = self.agent.child
        assert child is not None
        started = time.monotonic()
        os.killpg(child.pid, signal.SIGTERM)
        try:
            child.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.notes.append("an orderly stop (SIGTERM) took over 30 s; killed")
            self.children.stop(child, sig=signal.SIGKILL)
            return None
        return round(time.monotonic() - started, 2)

    def write_errors(self) -> int | None:
        status = self.agent.status(timeout_s=5.0)
        return None if status is None else int(status["buffer"].get("write_errors", 0))

    def disk_full(self, fault: dict[str, Any]) -> None:
        """An orderly restart first (the last close deletes SQLite's WAL, so the next commits
        must grow it: later in a run the WAL has reached its size and is reused in place, and
        a full disk would not touch it), then the tmpfs filled to the last byte, held, freed."""
        assert self.tmpfs is not None
        hold_s = self.rng.uniform(5.0, 12.0)
        ballast = self.tmpfs / "ballast"
        self.orderly_stop()
        self.agent.start()
        end = time.monotonic() + 60
        while not (self.feeder.attached_now() and self.write_errors() is not None):
            if time.monotonic() > end:
                self.notes.append("disk_full: the restarted agent did not open its port in 60 s")
                break
            time.sleep(0.1)
        errors_before = self.write_errors()
        fault["start"] = time.monotonic()
        fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for size in (1 << 20, 4096, 1):  # fill the tmpfs to the last byte
                block = b"\0" * size
                with contextlib.suppress(OSError):
                    while os.write(fd, block):
                        pass
        finally:
            os.close(fd)
        time.sleep(hold_s)
        errors_after = self.write_errors()
        ballast_bytes = ballast.stat().st_size
        ballast.unlink()
        fault["end"] = time.monotonic()
        bit = None
        if errors_before is not None and errors_after is not None:
            bit = errors_after - errors_before
        fault["detail"] = {"ballast_bytes": ballast_bytes, "agent_write_errors": bit}
        if not bit:
            self.notes.append(f"disk_full: the agent reported no write error while full ({bit})")

    def invalid_config(self, fault: dict[str, Any]) -> None:
        valid = self.agent.config_path.read_text()
        fault["start"] = time.monotonic()
        stop_s = self.orderly_stop()
        before = tree_digest(self.agent.data_dir, {"ballast"})
        invalid = valid.replace(f"flush_interval_s = {FLUSH_INTERVAL_S!r}", INVALID_CONFIG_LINE)
        self.agent.config_path.write_text(invalid)
        refused_at = time.monotonic()
        try:
            done = subprocess.run(
                self.agent.argv, env=self.agent._env, cwd=self.agent.workdir,
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            rc, stderr = done.returncode, done.stderr
        except subprocess.TimeoutExpired:
            rc, stderr = None, "(still running after 60 s)"
        refuse_s = round(time.monotonic() - refused_at, 2)
        after = tree_digest(self.agent.data_dir, {"ballast"})
        expected = f"citygw: invalid config: {self.agent.config_path}: {INVALID_CONFIG_MESSAGE}\n"
        refusal = {
            "exit_code": rc,
            "message_exact": stderr == expected,
            "stderr": stderr[-500:],
            "buffer_identical": before == after,
            "files": sorted(before),
            "refused_in_s": refuse_s,
            "orderly_stop_s": stop_s,
        }
        self.refusals.append(refusal)
        self.agent.config_path.write_text(valid)
        self.agent.start()
        fault["end"] = time.monotonic()
        fault["detail"] = {
            k: refusal[k]
            for k in ("exit_code", "message_exact", "buffer_identical", "refused_in_s")
        }

    def run_faults(self) -> None:
        kinds = self.schedule()
        counts: dict[str, int] = {}
        run_end = time.monotonic() + self.args.minutes * 60
        actions: dict[str, Callable[[dict[str, Any]], None]] = {
            "kill9": self.kill9,
            "broker_restart": self.broker_restart,
            "broker_hang": self.broker_hang,
            "unplug": self.unplug,
            "disk_full": self.disk_full,
            "garbage": self.garbage,
            "invalid_config": self.invalid_config,
        }
        for i, kind in enumerate(kinds):
            self.check_threads()
            # spread what is left of the run over the faults still to come; every scheduled
            # fault runs (the whole run is bounded by the deadline), so a slow machine makes
            # the run longer, not the schedule shorter
            left = run_end - time.monotonic()
            share = self.rng.uniform(0.2, 0.8)
            gap_s = max(1.0, min(30.0, left / (len(kinds) - i) * share))
            self.deadline.cap(gap_s, f"before fault {i + 1} of {len(kinds)}")
            time.sleep(gap_s)
            counts[kind] = counts.get(kind, 0) + 1
            fault: dict[str, Any] = {}
            actions[kind](fault)
            record = Fault(
                kind, counts[kind], fault["start"], fault["end"], fault.get("detail", {})
            )
            self.faults.append(record)
            first = self.wait_recovered(record)
            log(
                f"{kind} #{counts[kind]} ({i + 1}/{len(kinds)}): held "
                f"{record.end_s - record.start_s:.1f} s, "
                + (f"readings again after {first:.1f} s" if first is not None else "NOT recovered")
            )

    def wait_recovered(self, fault: Fault) -> float | None:
        """Until a reading of a frame written after the fault's end reaches the hub."""
        timeout_s = self.deadline.cap(self.args.recovery_timeout, "waiting for recovery")
        end = time.monotonic() + timeout_s
        target: int | None = None
        while time.monotonic() < end:
            if target is None:
                target = self.feeder.first_after(fault.end_s)
            if target is not None and self.hub.max_n >= target:
                return time.monotonic() - fault.end_s
            time.sleep(0.05)
        self.notes.append(
            f"{fault.kind} #{fault.index}: no new reading within {timeout_s:.0f} s"
            f"{self.agent_log_tail()[-1500:]}"
        )
        return None

    def check_threads(self) -> None:
        if self.feeder.error is not None:
            raise BenchError(f"the feeder failed: {self.feeder.error!r}")
        if not self.feeder.is_alive():
            raise BenchError("the feeder stopped")
        if self.agent.child is None or not self.agent.child.running:
            code = None if self.agent.child is None else self.agent.child.proc.returncode
            self.notes.append(f"the agent had exited ({code}) between faults; restarted")
            self.agent.start()

    def drain(self) -> None:
        """Stop offering, then wait (bounded) until the agent has nothing left to send."""
        time.sleep(3.0)
        self.feeder.stop()
        end = time.monotonic() + self.deadline.cap(self.args.drain_timeout, "draining")
        while time.monotonic() < end:
            status = self.agent.status(timeout_s=2.0)
            quiet = time.monotonic() - self.hub.last_arrival_s > 3.0
            if status and status["buffer"]["depth"] == 0 and quiet:
                return
            time.sleep(0.5)
        self.notes.append(f"the buffer did not drain within {self.args.drain_timeout:.0f} s")

    def report(self, elapsed_s: float) -> dict[str, Any]:
        self.lives.sample()
        run = Run(
            frames=list(self.feeder.frames),
            faults=self.faults,
            arrivals=list(self.hub.arrivals),
            attach_edges_s=list(self.feeder.attach_edges_s),
            window_s=self.window_s,
        )
        figures = account(run)
        refusal_problems = [
            f"invalid config #{i + 1}: {what}"
            for i, r in enumerate(self.refusals)
            for what, bad in (
                (f"exit code {r['exit_code']} (expected 2)", r["exit_code"] != 2),
                (f"message not exact: {r['stderr']!r}", not r["message_exact"]),
                ("buffer changed", not r["buffer_identical"]),
            )
            if bad
        ]
        figures["problems"] += refusal_problems
        figures["problems"] += [f"skipped {k}: {why}" for k, why in self.skipped.items()]
        figures["goal_met"] = not figures["problems"]
        hwm = max(self.lives.hwm_kb.values(), default=0)
        figures.update(
            {
                "seed": self.args.seed,
                "minutes": self.args.minutes,
                "rate_frames_per_s": self.args.rate,
                "elapsed_s": round(elapsed_s, 1),
                "machine": machine(),
                "agent_lives": len(self.lives.hwm_kb),
                "readings_accepted": sum(self.lives.accepted.values()),
                "agent_dropped_max": max(self.lives.dropped.values(), default=0),
                "agent_write_errors_max": max(self.lives.write_errors.values(), default=0),
                "rss_vmhwm_max_mb": round(hwm * 1024 / 1e6, 1),
                "rss_peak_metric_max_mb": round(
                    max(self.lives.status_rss_peak.values(), default=0) / 1e6, 1
                ),
                "hub_messages": self.hub.messages,
                "hub_decode_errors": self.hub.decode_errors,
                "hub_sessions_lost": self.hub.sessions_lost,
                "garbage_bytes": self.feeder.garbage_bytes,
                "invalid_config_refusals": self.refusals,
                "skipped": self.skipped,
                "notes": self.notes,
                "window_rule": (
                    f"a reading written at most {self.window_s:g} s before a kill -9 "
                    "(commit_interval_ms, docs/operations.md)"
                ),
            }
        )
        return figures


def machine() -> str:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs ({cpu}), {os.uname().sysname} {os.uname().release}"


def text_report(r: dict[str, Any]) -> str:
    lines = [
        f"chaos run: seed {r['seed']}, {r['minutes']} min planned, {r['elapsed_s']} s elapsed, "
        f"{r['rate_frames_per_s']:g} frames/s, {r['machine']}",
        f"faults: {', '.join(f'{k} {v}' for k, v in r['faults_by_kind'].items())}"
        + (f" (skipped: {r['skipped']})" if r["skipped"] else ""),
        f"frames offered {r['frames_offered']} ({r['readings_offered']} readings); "
        f"readings accepted by the agent {r['readings_accepted']} (its status, polled 1/s, "
        f"{r['agent_lives']} lives); delivered {r['readings_delivered']}; "
        f"lost {r['readings_lost']}; unaccounted {r['unaccounted']}",
        "lost by cause (readings): "
        + ", ".join(f"{k} {v}" for k, v in r["lost_by_cause"].items())
        + f"  [window: {r['window_rule']}; the oldest reading lost in it was written "
        f"{r['window_used_max_s']} s before its kill]",
    ]
    lines.extend(
        f"  lost outside the window: frame {item['frame']} {item['readings']}, "
        f"nearest {item['nearest']}"
        for item in r["lost_other"][:40]
    )
    if len(r["lost_other"]) > 40:
        lines.append(f"  ... {len(r['lost_other']) - 40} more frames")
    gaps = {e: g["missing"] for e, g in r["key_gaps"].items()}
    lines += [
        f"duplicates: {r['duplicates_before_dedupe']} before dedupe by key, "
        f"{r['duplicates_after_dedupe']} after; key gaps per epoch: {gaps}; out of order: "
        f"{r['out_of_order_keys']} keys, {r['out_of_order_frames']} frames",
        "recovery (fault end -> first reading of a frame written after it, at the hub):",
    ]
    for kind, s in r["recovery"].items():
        lines.append(
            f"  {kind:15} n={s['count']:3}  max {s['max_s']} s  median {s['median_s']} s"
            + (f"  NOT recovered: {s['not_recovered']}" if s["not_recovered"] else "")
        )
    for i, ref in enumerate(r["invalid_config_refusals"], 1):
        lines.append(
            f"invalid config #{i}: exit {ref['exit_code']}, message exact {ref['message_exact']}, "
            f"buffer identical {ref['buffer_identical']}, refused in {ref['refused_in_s']} s, "
            f"orderly stop before it {ref['orderly_stop_s']} s"
        )
    lines.append(
        f"agent RSS: max VmHWM {r['rss_vmhwm_max_mb']} MB across lives (its rss_peak_bytes "
        f"metric said up to {r['rss_peak_metric_max_mb']} MB); agent dropped (max per life) "
        f"{r['agent_dropped_max']}, write errors {r['agent_write_errors_max']}; hub sessions "
        f"lost {r['hub_sessions_lost']}, decode errors {r['hub_decode_errors']}"
    )
    lines.extend(f"note: {note[:400]}" for note in r["notes"])
    verdict = (
        "GOAL MET: 0 readings lost outside the documented window, every fault recovered "
        f"in < {RECOVERY_GOAL_S:.0f} s"
        if r["goal_met"]
        else "GOAL NOT MET:\n" + "\n".join(f"  - {p}" for p in r["problems"])
    )
    lines.append(verdict)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="length of the fault phase")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=10.0, help="SDS011 frames per second")
    parser.add_argument("--recovery-timeout", type=float, default=90.0)
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument("--json", action="store_true", help="the report as JSON on stdout")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    args = parser.parse_args(argv)

    install_signal_handlers()
    workdir = Path(tempfile.mkdtemp(prefix="citygw-chaos-"))
    children = Children()
    chaos = Chaos(args, workdir, children)
    ok = False
    started = time.monotonic()
    try:
        log(f"seed {args.seed}, {args.minutes:g} min, faults {fault_counts(args.minutes)}")
        chaos.setup()
        chaos.run_faults()
        chaos.drain()
        result = chaos.report(time.monotonic() - started)
        ok = True
    except BenchError as error:
        print(f"chaos: {error}", file=sys.stderr)
        return 1
    finally:
        chaos.teardown()
        children.close()
        if ok and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"chaos: work files kept in {workdir}", file=sys.stderr)
    if args.json:
        print(text_report(result), file=sys.stderr)
        print(json.dumps(result, indent=1))
    else:
        print(text_report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
