"""deploy/install.sh in a throwaway root (--root): fresh install, a second run that changes
nothing, an upgrade that keeps config and buffer, uninstall that keeps data, --purge.

Offline like a field install: the ``wheelhouse`` fixture (this checkout's wheel plus the runtime
dependencies for this machine, fetched once per run through pip's configured index; built in
tests/integration/conftest.py) and --wheelhouse."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from offline_install import build_citygw_wheel, manifest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "deploy" / "install.sh"


def run_install(root: Path, *args: str) -> str:
    proc = subprocess.run(
        ["bash", str(INSTALL), "--root", str(root), "--python", sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "DESTDIR"},
    )
    assert proc.returncode == 0, f"install.sh {args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_fresh_install_then_a_second_run_changes_nothing(tmp_path: Path, wheelhouse: Path) -> None:
    root = tmp_path / "root"
    out = run_install(root, "--wheelhouse", str(wheelhouse))
    assert "installed the example config" in out
    assert (root / "etc/citygw/gateway.toml").read_bytes() == (
        REPO / "config/gateway.example.toml"
    ).read_bytes()
    assert (root / "etc/systemd/system/citygw.service").read_bytes() == (
        REPO / "deploy/citygw.service"
    ).read_bytes()
    assert (root / "etc/udev/rules.d/99-citygw-serial.rules").is_file()
    assert (root / "etc/modules-load.d/citygw.conf").is_file()
    assert (root / "var/lib/citygw").is_dir()
    assert str((root / "usr/local/bin/citygw").readlink()) == "/opt/citygw/bin/citygw"
    version = subprocess.run(
        [str(root / "opt/citygw/bin/citygw"), "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "0.1" in version
    firmware = subprocess.run(  # the node firmware travels in the wheel (for `node flash`)
        [
            str(root / "opt/citygw/bin/python"),
            "-c",
            "import gateway, pathlib; "
            "print(pathlib.Path(gateway.__file__).parent / 'node_firmware')",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    ).stdout.strip()
    assert firmware.startswith(str(root / "opt/citygw")), firmware
    assert (Path(firmware) / "main.py").read_bytes() == (REPO / "firmware/main.py").read_bytes()
    before = manifest(root)

    out = run_install(root, "--wheelhouse", str(wheelhouse))
    assert "nothing to do" in out
    assert manifest(root) == before


def test_upgrade_keeps_config_and_buffer(tmp_path: Path, wheelhouse: Path) -> None:
    root = tmp_path / "root"
    run_install(root, "--wheelhouse", str(wheelhouse))
    config = root / "etc/citygw/gateway.toml"
    config.write_text(config.read_text().replace('id = "gw-0001"', 'id = "gw-0042"'))
    buffer = root / "var/lib/citygw/buffer.db"
    buffer.write_bytes(b"unsent readings")

    newer = tmp_path / "newer"
    shutil.copytree(wheelhouse, newer, ignore=shutil.ignore_patterns("citygw-*"))
    build_citygw_wheel(tmp_path, newer, version="99.0")
    out = run_install(root, "--wheelhouse", str(newer))
    assert "installed citygw 99.0" in out
    assert 'id = "gw-0042"' in config.read_text()
    assert buffer.read_bytes() == b"unsent readings"


def test_uninstall_keeps_data_and_purge_removes_it(tmp_path: Path, wheelhouse: Path) -> None:
    root = tmp_path / "root"
    run_install(root, "--wheelhouse", str(wheelhouse))
    (root / "var/lib/citygw/buffer.db").write_bytes(b"unsent readings")

    run_install(root, "--uninstall")
    for gone in (
        "opt/citygw",
        "usr/local/bin/citygw",
        "etc/systemd/system/citygw.service",
        "etc/udev/rules.d/99-citygw-serial.rules",
        "etc/modules-load.d/citygw.conf",
    ):
        assert not (root / gone).exists(), gone
    assert (root / "etc/citygw/gateway.toml").is_file()
    assert (root / "var/lib/citygw/buffer.db").read_bytes() == b"unsent readings"

    run_install(root, "--uninstall", "--purge")
    assert not (root / "etc/citygw").exists()
    assert not (root / "var/lib/citygw").exists()
