"""deploy/citygw.service passes `systemd-analyze verify` and stays hardened: the exposure score
of `systemd-analyze security --offline=true` is 2.0 or lower ("OK"). Also shellcheck on the
install script and the .deb's build and maintainer scripts where shellcheck is installed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "citygw.service"
MAX_EXPOSURE = 2.0


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        reason = "systemd-analyze not installed (Debian package 'systemd'; make deps)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set, so this is a failure)")
        pytest.skip(reason)
    return found


def test_unit_verifies(tmp_path: Path) -> None:
    # verify insists that ExecStart= exists: check a copy whose ExecStart is a stub.
    stub = tmp_path / "citygw"
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    text = UNIT.read_text()
    assert "ExecStart=/opt/citygw/bin/citygw run --config /etc/citygw/gateway.toml" in text
    copy = tmp_path / "citygw.service"
    copy.write_text(text.replace("/opt/citygw/bin/citygw", str(stub)))
    proc = subprocess.run(
        [systemd_analyze(), "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout + proc.stderr == "", "verify warns:\n" + proc.stdout + proc.stderr


def test_security_exposure_is_ok() -> None:
    proc = subprocess.run(
        [systemd_analyze(), "security", "--offline=true", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, SYSTEMD_COLORS="0"),
    )
    found = re.search(r"Overall exposure level for citygw\.service: (\d+\.\d+)", proc.stdout)
    assert found, f"no score in the output:\n{proc.stdout}\n{proc.stderr}"
    score = float(found.group(1))
    worst = "\n".join(line for line in proc.stdout.splitlines() if line.startswith("✗"))
    assert score <= MAX_EXPOSURE, f"exposure {score} > {MAX_EXPOSURE}; open items:\n{worst}"


def test_unit_essentials() -> None:
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=30",
        "Restart=always",
        "User=citygw",
        "SupplementaryGroups=dialout bluetooth",
        "StateDirectory=citygw",
        "DevicePolicy=closed",
        "ProtectSystem=strict",
    ):
        assert f"\n{line}\n" in text, line
    assert "\nPrivateDevices=yes" not in text  # it would hide the serial adapters


@pytest.mark.parametrize(
    "script", ["install.sh", "build-deb.sh", "deb/postinst", "deb/prerm", "deb/postrm"]
)
def test_install_script_is_shellcheck_clean(script: str) -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck not installed (Debian package 'shellcheck')")
    proc = subprocess.run(
        [shellcheck, str(REPO / "deploy" / script)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_agent_keeps_its_checks_under_the_units_optimize_level(tmp_path: Path) -> None:
    # The unit sets PYTHONOPTIMIZE=2, which strips `assert`: a check must be an `if`.
    assert "PYTHONOPTIMIZE=2" in UNIT.read_text()
    script = f"""
import asyncio
from gateway.agent.root import Agent, AgentNotRunning
from gateway.config import parse_config
from gateway.remote.policy import Changes

config = parse_config({{
    "gateway": {{"id": "gw-opt", "data_dir": {str(tmp_path)!r}}},
    "hub": {{"url": "mqtt://127.0.0.1:1"}},
    "sources": [{{"type": "serial", "name": "pm", "port": "/dev/null", "driver": "sds011"}}],
}})
try:
    asyncio.run(Agent(config).apply(config, Changes(sources_added=["pm"])))
except AgentNotRunning as error:
    print("refused:", error)
"""
    proc = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONOPTIMIZE": "2"},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("refused: the agent is not running"), proc.stdout


SERIAL_GROUPS = {"char-ttyUSB", "char-ttyACM", "char-ttyAMA"}
"""Device groups (names in /proc/devices) whose every minor is a serial port."""


def test_device_allow_names_serial_ports_only_never_the_consoles() -> None:
    # char-ttyS is major 4, which also holds the virtual consoles /dev/tty0..63; char-tty is
    # major 5 (/dev/tty, /dev/console). The 8250 UARTs must be listed one by one.
    entries = [
        line.removeprefix("DeviceAllow=").rsplit(" ", 1)
        for line in UNIT.read_text().splitlines()
        if line.startswith("DeviceAllow=")
    ]
    assert entries, "the unit lets the serial adapters through"
    for device, access in entries:
        assert access == "rw", device
        assert device in SERIAL_GROUPS or re.fullmatch(r"/dev/ttyS[0-9]{1,2}", device), device


def test_the_allowed_device_groups_never_resolve_to_the_console_majors() -> None:
    # systemd resolves char-NAME against /proc/devices by name; 4 (tty0.., ttyS) and 5
    # (/dev/tty, /dev/console, ptmx) must not be among the majors that come out.
    text = Path("/proc/devices").read_text()
    char_section = text.split("Block devices:")[0]
    majors = {
        int(major)
        for major, name in (line.split() for line in char_section.splitlines()[1:] if line)
        if f"char-{name}" in SERIAL_GROUPS
    }
    assert not majors & {4, 5}
