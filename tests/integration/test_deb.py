"""The .deb (deploy/build-deb.sh, `make deb`): what is in it, and its maintainer scripts at work.

The package is built for this machine's architecture from the ``wheelhouse`` fixture (conftest.py)
and installed with the real dpkg into a throwaway root: `dpkg --root DIR
--force-script-chrootless` runs the maintainer scripts here with $DPKG_ROOT=DIR, and they run
install.sh --package against that root (no user creation there; tests/integration/
test_install_chroot.py installs the package in a Debian chroot, user and all)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from offline_install import build_citygw_wheel, build_deb, manifest, tool

from gateway import __version__

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
# Shipped by dpkg (besides the wheels): the rest (/opt/citygw, /etc/citygw, /var/lib/citygw,
# the user) is made by the maintainer scripts.
PACKAGE_FILES = {
    "./lib/systemd/system/citygw.service",
    "./lib/udev/rules.d/99-citygw-serial.rules",
    "./usr/lib/modules-load.d/citygw.conf",
    "./usr/bin/citygw",
    "./usr/lib/citygw/deploy/install.sh",
    "./usr/lib/citygw/config/gateway.example.toml",
    "./usr/lib/citygw/docs/install.md",
    "./usr/lib/citygw/constraints.txt",
    "./usr/share/doc/citygw/copyright",
    "./usr/share/doc/citygw/changelog.gz",
}
# lintian tags accepted, and why.
LINTIAN_ACCEPTED = {
    "no-manual-page",  # `citygw --help` and docs/; no man page yet
}


@pytest.fixture(scope="module")
def deb(wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_deb(wheelhouse, tmp_path_factory.mktemp("deb"))


def dpkg_deb(*args: str) -> str:
    return subprocess.run(
        [tool("dpkg-deb"), *args], capture_output=True, text=True, check=True
    ).stdout


def test_the_package_holds_the_program_files_and_the_wheels_for_its_architecture(
    deb: Path,
    wheelhouse: Path,
) -> None:
    arch = subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert deb.name == f"citygw_{__version__}_{arch}.deb"
    fields = {
        name: dpkg_deb("-f", str(deb), name).strip()
        for name in ("Package", "Version", "Architecture", "Depends", "Maintainer")
    }
    assert fields["Package"] == "citygw"
    assert fields["Version"] == __version__
    assert fields["Architecture"] == arch
    # The wheels are for CPython 3.11: bookworm's python3.
    assert fields["Depends"] == "python3 (>= 3.11), python3 (<< 3.12), python3-venv, passwd"

    listing = [line.split() for line in dpkg_deb("-c", str(deb)).splitlines()]
    paths = {parts[5] for parts in listing}
    wheels = {
        path.rsplit("/", 1)[1]
        for path in paths
        if path.startswith("./usr/lib/citygw/wheelhouse/") and path.endswith(".whl")
    }
    assert wheels == {p.name for p in wheelhouse.glob("*.whl")}
    assert paths >= PACKAGE_FILES
    assert not any(
        path.startswith(("./etc/", "./opt/", "./var/", "./usr/local/")) for path in paths
    ), "dpkg must not own config, state or the venv"
    link = next(parts for parts in listing if parts[5] == "./usr/bin/citygw")
    assert link[6:] == ["->", "/opt/citygw/bin/citygw"]
    owners = {parts[1] for parts in listing}
    assert owners == {"root/root"}
    unit = next(parts for parts in listing if parts[5] == "./lib/systemd/system/citygw.service")
    assert unit[0] == "-rw-r--r--"


def test_the_config_is_no_dpkg_conffile_and_the_scripts_are_there(
    deb: Path, tmp_path: Path
) -> None:
    # /etc/citygw/gateway.toml is made by postinst from the example and never touched again:
    # a dpkg conffile would be replaced on upgrade when unedited, or stop the upgrade with a
    # question when edited (Debian Policy 10.7.3 covers files the scripts manage).
    control = tmp_path / "control"
    subprocess.run([tool("dpkg-deb"), "-e", str(deb), str(control)], check=True)
    assert not (control / "conffiles").exists()
    for script in ("postinst", "prerm", "postrm"):
        path = control / script
        assert path.stat().st_mode & 0o777 == 0o755, script
        assert path.read_bytes() == (REPO / "deploy" / "deb" / script).read_bytes()
        subprocess.run(["sh", "-n", str(path)], check=True)


def test_lintian_finds_nothing_unexplained(deb: Path) -> None:
    lintian = shutil.which("lintian")
    if lintian is None:
        pytest.skip("lintian not installed (Debian package 'lintian')")
    proc = subprocess.run(
        [lintian, "--no-tag-display-limit", str(deb)], capture_output=True, text=True, timeout=180
    )
    tags = [line for line in proc.stdout.splitlines() if line[:2] in ("E:", "W:", "I:")]
    unexplained = [line for line in tags if line.split()[2] not in LINTIAN_ACCEPTED]
    assert unexplained == [], proc.stdout


def dpkg_root(root: Path, *args: str) -> str:
    """dpkg on a throwaway root; maintainer scripts run here with DPKG_ROOT=root."""
    admin = root / "var/lib/dpkg"
    if not admin.exists():
        for sub in ("info", "updates"):
            (admin / sub).mkdir(parents=True)
        (admin / "status").touch()
    env = {k: v for k, v in os.environ.items() if k not in ("DESTDIR", "DPKG_ROOT")}
    proc = subprocess.run(
        [
            tool("dpkg"),
            f"--root={root}",
            "--force-script-chrootless",
            "--force-depends",
            "--force-not-root",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert proc.returncode == 0, f"dpkg {args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_install_reinstall_upgrade_remove_purge_with_dpkg(
    tmp_path: Path,
    deb: Path,
    wheelhouse: Path,
) -> None:
    root = tmp_path / "root"
    out = dpkg_root(root, "-i", str(deb))
    assert "installed the example config" in out
    assert (root / "etc/citygw/gateway.toml").read_bytes() == (
        REPO / "config/gateway.example.toml"
    ).read_bytes()
    assert (root / "var/lib/citygw").is_dir()
    version = subprocess.run(
        [str(root / "opt/citygw/bin/citygw"), "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert version.strip() == f"citygw {__version__}"
    # Enabled on first install (not started: the config needs editing).
    wants = root / "etc/systemd/system/multi-user.target.wants/citygw.service"
    assert str(wants.readlink()) == "/lib/systemd/system/citygw.service"

    config = root / "etc/citygw/gateway.toml"
    config.write_text(config.read_text().replace('id = "gw-0001"', 'id = "gw-0042"'))
    buffer = root / "var/lib/citygw/buffer.db"
    buffer.write_bytes(b"unsent readings")
    kept = {
        path: text
        for path, text in manifest(root).items()
        if path.startswith(("etc/", "opt/", "var/lib/citygw"))
    }

    out = dpkg_root(root, "-i", str(deb))  # the same package again
    assert "nothing to do" in out
    assert {
        path: text
        for path, text in manifest(root).items()
        if path.startswith(("etc/", "opt/", "var/lib/citygw"))
    } == kept

    newer = tmp_path / "newer"
    shutil.copytree(wheelhouse, newer, ignore=shutil.ignore_patterns("citygw-*"))
    build_citygw_wheel(tmp_path, newer, version="99.0")
    out = dpkg_root(root, "-i", str(build_deb(newer, tmp_path / "dist-newer")))
    assert "installed citygw 99.0" in out
    assert 'id = "gw-0042"' in config.read_text()
    assert buffer.read_bytes() == b"unsent readings"

    dpkg_root(root, "--remove", "citygw")
    for gone in (
        "opt/citygw",
        "usr/bin/citygw",
        "lib/systemd/system/citygw.service",
        "lib/udev/rules.d/99-citygw-serial.rules",
        "usr/lib/citygw",
    ):
        assert not os.path.lexists(root / gone), gone
    assert 'id = "gw-0042"' in config.read_text()
    assert buffer.read_bytes() == b"unsent readings"
    # As debhelper does it: masked while removed, so a reinstall keeps the admin's choice.
    mask = root / "etc/systemd/system/citygw.service"
    assert str(mask.readlink()) == "/dev/null"

    dpkg_root(root, "--purge", "citygw")
    assert not (root / "etc/citygw").exists()
    assert not (root / "var/lib/citygw").exists()
    assert not os.path.lexists(mask)
    assert not os.path.lexists(wants)
    assert "citygw" not in dpkg_root(root, "--list")
