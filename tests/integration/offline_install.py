"""What the install tests (test_install.py, test_deb.py, test_install_chroot.py) build and compare.

- ``build_wheelhouse(tmp)``: this checkout's wheel plus the runtime dependencies for this
  machine (pip's configured index, constraints.txt), as `make wheelhouse` makes for a gateway.
  The ``wheelhouse`` fixture (tests/integration/conftest.py) builds it once per run.
- ``build_citygw_wheel(tmp, dest, version=...)``: a citygw wheel, optionally of another version.
- ``build_deb(house, out)``: deploy/build-deb.sh from a wheelhouse.
- ``manifest(root)``: every path under a directory with its type, mode and content hash.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from skips import skip_or_fail

REPO = Path(__file__).resolve().parents[2]
BUILD_DEB = REPO / "deploy" / "build-deb.sh"


def pip(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", *args],
        check=True,
        capture_output=True,
    )


def build_citygw_wheel(tmp: Path, dest: Path, version: str | None = None) -> None:
    """A citygw wheel from a copy of this checkout (optionally with another version)."""
    src = tmp / f"src-{version or 'current'}"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO / name, src / name)
    for package in ("gateway", "drivers", "firmware"):
        shutil.copytree(
            REPO / package,
            src / package,
            ignore=shutil.ignore_patterns("__pycache__", "node_modules", "sim"),
        )
    if version is not None:
        init = src / "gateway" / "__init__.py"
        text = init.read_text().replace('__version__ = "', f'__version__ = "{version}"  # ', 1)
        init.write_text(text)
    pip("wheel", "--no-deps", "--wheel-dir", str(dest), str(src))


def build_wheelhouse(tmp: Path) -> Path:
    """``tmp``/wheels: the runtime dependencies (binary wheels) and this checkout's wheel."""
    house = tmp / "wheels"
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    try:
        pip(
            "download",
            "--only-binary=:all:",
            "--dest",
            str(house),
            "-c",
            str(REPO / "constraints.txt"),
            *deps,
        )
        build_citygw_wheel(tmp, house)
    except subprocess.CalledProcessError as error:
        skip_or_fail(f"no package index to build the wheelhouse: {error.stderr.decode()[-500:]}")
    return house


def manifest(root: Path) -> dict[str, str]:
    """Every path under root with its type, mode and content hash (or link target)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel, st = str(path.relative_to(root)), path.lstat()
        if path.is_symlink():
            out[rel] = f"link -> {path.readlink()}"
        elif path.is_dir():
            out[rel] = f"dir {st.st_mode & 0o7777:o}"
        else:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            out[rel] = f"file {st.st_mode & 0o7777:o} {digest}"
    return out


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} not installed (Debian package 'dpkg'): the .deb needs Debian")
    return found


def build_deb(house: Path, out: Path) -> Path:
    tool("dpkg-deb")
    proc = subprocess.run(
        ["bash", str(BUILD_DEB), "--wheelhouse", str(house), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (deb,) = out.glob("citygw_*.deb")
    return deb
