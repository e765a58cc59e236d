"""install.sh and the .deb in a Debian bookworm chroot: a real system user, real groups, real
ownership; fresh install, a second run that changes nothing, an upgrade that keeps config and
buffer, uninstall (remove) that keeps them, purge.

The chroot is `debootstrap --variant=minbase --include=python3-venv bookworm` from the Debian
mirror ($DEBIAN_MIRROR), made once and cached as a tar file under $CITYGW_CACHE_DIR (default
~/.cache/citygw; delete the file to refresh it): about 55 s the first time, 3 s to unpack after
that. The install is offline, from the ``wheelhouse`` fixture (conftest.py) as in
test_install.py. systemd does not run in a chroot, so the scripts skip systemctl and udevadm
there (tests/unit/test_service_unit.py checks the unit)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from offline_install import build_citygw_wheel, build_deb
from skips import skip_or_fail

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
CACHE = Path(os.environ.get("CITYGW_CACHE_DIR") or Path.home() / ".cache" / "citygw")
TARBALL = CACHE / "bookworm-minbase-python3-venv.tar"
# What install.sh reads from a checkout (it finds them relative to itself).
CHECKOUT = ("deploy", "config", "docs/install.md", "constraints.txt")
# Top directories of the chroot left out of its state: our own copies, caches, logs, devices.
VOLATILE = {"root", "tmp", "var/cache", "var/log", "dev", "proc", "run", "sys"}


@pytest.fixture(scope="module")
def bookworm_tar() -> Path:
    if os.geteuid() != 0:
        skip_or_fail("chroot needs root")
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        skip_or_fail("debootstrap not installed (Debian package 'debootstrap'; make deps)")
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as lock:  # other checkouts may build it at the same time
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not TARBALL.exists():
            work = CACHE / "bookworm.tmp"
            shutil.rmtree(work, ignore_errors=True)
            proc = subprocess.run(
                [
                    str(debootstrap),
                    "--variant=minbase",
                    "--include=python3-venv",
                    "bookworm",
                    str(work),
                    MIRROR,
                ],
                capture_output=True,
                text=True,
                timeout=540,
            )
            if proc.returncode != 0:
                shutil.rmtree(work, ignore_errors=True)
                skip_or_fail(
                    f"debootstrap from {MIRROR} failed:\n{proc.stdout[-2000:]}"
                    f"\n{proc.stderr[-2000:]}"
                )
            subprocess.run(["tar", "-C", str(work), "-cf", f"{TARBALL}.tmp", "."], check=True)
            Path(f"{TARBALL}.tmp").replace(TARBALL)
            shutil.rmtree(work)
    return TARBALL


class Chroot:
    def __init__(self, root: Path) -> None:
        self.root = root

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``argv`` in the chroot with a clean environment, as root."""
        proc = subprocess.run(
            [
                "chroot",
                str(self.root),
                "/usr/bin/env",
                "-i",
                "HOME=/root",
                "LANG=C.UTF-8",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                *argv,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check:
            assert proc.returncode == 0, f"{argv} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc

    def install_sh(self, *args: str) -> str:
        return self.run("bash", "/root/citygw/deploy/install.sh", *args).stdout

    def owner(self, path: str) -> str:
        return self.run("stat", "-c", "%U:%G %a", path).stdout.strip()

    def groups(self, user: str) -> set[str]:
        proc = self.run("id", "-nG", user, check=False)
        return set(proc.stdout.split()) if proc.returncode == 0 else set()

    def version(self, command: str) -> str:
        return self.run(command, "--version").stdout.strip()

    def state(self) -> dict[str, str]:
        """Every path with its type, owner, mode and content hash (or link target), except
        VOLATILE ones (and never reading a device: /dev/zero has no end)."""
        out = {}
        for top, dirs, files in os.walk(self.root):
            rel_top = os.path.relpath(top, self.root)
            dirs[:] = [d for d in dirs if os.path.normpath(Path(rel_top) / d) not in VOLATILE]
            for name in dirs + files:
                path = Path(top) / name
                rel, st = os.path.relpath(path, self.root), os.lstat(path)
                entry = f"{stat.filemode(st.st_mode)} {st.st_uid}:{st.st_gid}"
                if stat.S_ISLNK(st.st_mode):
                    entry += f" -> {path.readlink()}"
                elif stat.S_ISREG(st.st_mode):
                    with path.open("rb") as file:
                        entry += " " + hashlib.file_digest(file, "sha256").hexdigest()
                out[rel] = entry
        return out


@pytest.fixture
def chroot(tmp_path: Path, bookworm_tar: Path, wheelhouse: Path) -> Iterator[Chroot]:
    root = tmp_path / "bookworm"
    root.mkdir()
    subprocess.run(["tar", "-C", str(root), "-xf", str(bookworm_tar)], check=True)
    for name in CHECKOUT:
        source, dest = REPO / name, root / "root/citygw" / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, dest)
    shutil.copytree(wheelhouse, root / "root/wheels")
    newer = root / "root/wheels-newer"
    shutil.copytree(wheelhouse, newer, ignore=shutil.ignore_patterns("citygw-*"))
    build_citygw_wheel(tmp_path, newer, version="99.0")
    yield Chroot(root)
    shutil.rmtree(root, ignore_errors=True)


def assert_installed(chroot: Chroot) -> None:
    assert chroot.groups("citygw") == {"citygw", "dialout", "bluetooth"}
    assert (
        chroot.run("getent", "passwd", "citygw")
        .stdout.strip()
        .endswith(":citygw gateway agent:/var/lib/citygw:/usr/sbin/nologin")
    )
    assert chroot.owner("/etc/citygw") == "root:citygw 750"
    assert chroot.owner("/etc/citygw/gateway.toml") == "root:citygw 640"
    assert chroot.owner("/var/lib/citygw") == "citygw:citygw 750"


def keep_something(chroot: Chroot) -> tuple[Path, Path]:
    """An edited config and a buffer with unsent readings, as a gateway in the field has."""
    config = chroot.root / "etc/citygw/gateway.toml"
    config.write_text(config.read_text().replace('id = "gw-0001"', 'id = "gw-0042"'))
    buffer = chroot.root / "var/lib/citygw/buffer.db"
    buffer.write_bytes(b"unsent readings")
    return config, buffer


def test_install_sh_in_a_bookworm_chroot(chroot: Chroot) -> None:
    out = chroot.install_sh("--wheelhouse", "/root/wheels")
    assert "created system user citygw" in out
    assert_installed(chroot)
    assert chroot.version("citygw").startswith("citygw 0.1")
    assert (chroot.root / "etc/systemd/system/citygw.service").is_file()

    before = chroot.state()
    assert "nothing to do" in chroot.install_sh("--wheelhouse", "/root/wheels")
    assert chroot.state() == before

    config, buffer = keep_something(chroot)
    out = chroot.install_sh("--wheelhouse", "/root/wheels-newer")
    assert "installed citygw 99.0" in out
    assert chroot.version("citygw") == "citygw 99.0"
    assert 'id = "gw-0042"' in config.read_text()
    assert buffer.read_bytes() == b"unsent readings"
    assert_installed(chroot)

    chroot.install_sh("--uninstall")
    assert chroot.run("sh", "-c", "command -v citygw", check=False).returncode != 0
    assert not (chroot.root / "opt/citygw").exists()
    assert 'id = "gw-0042"' in config.read_text()
    assert buffer.read_bytes() == b"unsent readings"

    chroot.install_sh("--uninstall", "--purge")
    assert not (chroot.root / "etc/citygw").exists()
    assert not (chroot.root / "var/lib/citygw").exists()
    assert chroot.groups("citygw") == set()


def test_the_deb_in_a_bookworm_chroot(chroot: Chroot, tmp_path: Path) -> None:
    for house in ("wheels", "wheels-newer"):
        deb = build_deb(chroot.root / "root" / house, tmp_path / house)
        shutil.copy(deb, chroot.root / "root" / f"{house}.deb")
    # dpkg checks the dependencies (python3, python3-venv, passwd) against the chroot's.
    out = chroot.run("dpkg", "-i", "/root/wheels.deb").stdout
    assert "created system user citygw" in out
    assert_installed(chroot)
    assert chroot.version("/usr/bin/citygw").startswith("citygw 0.1")
    # Enabled on first install (deb-systemd-helper works without a running systemd).
    wants = chroot.root / "etc/systemd/system/multi-user.target.wants/citygw.service"
    assert str(wants.readlink()) == "/lib/systemd/system/citygw.service"

    before = chroot.state()
    assert "nothing to do" in chroot.run("dpkg", "-i", "/root/wheels.deb").stdout
    after = chroot.state()
    changed = {path for path in before.keys() | after.keys() if before.get(path) != after.get(path)}
    assert {path for path in changed if not path.startswith("var/lib/dpkg/")} == set()

    config, buffer = keep_something(chroot)
    assert "installed citygw 99.0" in chroot.run("dpkg", "-i", "/root/wheels-newer.deb").stdout
    assert chroot.version("/usr/bin/citygw") == "citygw 99.0"
    assert 'id = "gw-0042"' in config.read_text()
    assert buffer.read_bytes() == b"unsent readings"

    chroot.run("dpkg", "--remove", "citygw")
    assert not (chroot.root / "opt/citygw").exists()
    assert not os.path.lexists(chroot.root / "usr/bin/citygw")
    assert 'id = "gw-0042"' in config.read_text()
    assert buffer.read_bytes() == b"unsent readings"

    chroot.run("dpkg", "--purge", "citygw")
    assert not (chroot.root / "etc/citygw").exists()
    assert not (chroot.root / "var/lib/citygw").exists()
    assert chroot.groups("citygw") == set()
