"""`make wheelhouse`: the wheels a gateway needs to install citygw offline (--wheelhouse).

Downloads the runtime dependencies of the installed citygw (transitively, pinned by
constraints.txt) for CPython 3.11 on aarch64 (Pi OS arm64), armv7l (Pi OS armhf) and x86_64
(Debian 12 on a PC), plus a citygw wheel built from this checkout, into ./wheelhouse (`make deb`
packages it per architecture). Reports packages that have no binary wheel for a platform;
msgpack then gets a pure-Python wheel (msgpack's own fallback: same API, slower encoding),
anything else its sdist (which needs a compiler and setuptools on the gateway).

PIWHEELS=1 also asks piwheels.org (compiled linux_armv7l wheels for Raspberry Pi OS) for armv7l.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PLATFORMS = {
    "aarch64": [
        "manylinux2014_aarch64",
        "manylinux_2_28_aarch64",
        "musllinux_1_1_aarch64",
        "linux_aarch64",
    ],
    "armv7l": [
        "manylinux2014_armv7l",
        "manylinux_2_31_armv7l",
        "musllinux_1_1_armv7l",
        "musllinux_1_2_armv7l",
        "linux_armv7l",
    ],
    # Plain Debian 12 on a PC or VM (and the .deb for amd64).
    "x86_64": [
        "manylinux2014_x86_64",
        "manylinux_2_28_x86_64",
        "manylinux_2_34_x86_64",
        "linux_x86_64",
    ],
}
PURE_FALLBACK_ENV = {"msgpack": {"MSGPACK_PUREPYTHON": "1"}}


def pip(*args: str, env: dict[str, str] | None = None, quiet: bool = False) -> bool:
    """Run pip with `args`; True if it succeeded (its output only when not `quiet`)."""
    argv = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", *args]
    return (
        subprocess.run(
            argv,
            env=None if env is None else {**os.environ, **env},
            stderr=subprocess.DEVNULL if quiet else None,
        ).returncode
        == 0
    )


def runtime_closure(pins: dict[str, str], machine: str) -> list[str]:
    """name==version for citygw's runtime dependencies on ``machine``, transitively."""
    env = {
        "python_version": "3.11",
        "python_full_version": "3.11.2",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": machine,
        "os_name": "posix",
        "implementation_name": "cpython",
        "extra": "",
    }
    seen: dict[str, str] = {}
    todo = ["citygw"]
    while todo:
        for text in distribution(todo.pop()).requires or []:
            req = Requirement(text)
            name = canonicalize_name(req.name)
            if name in seen or (req.marker and not req.marker.evaluate(env)):
                continue
            seen[name] = pins.get(name) or distribution(name).version
            todo.append(name)
    return [f"{name}=={version}" for name, version in sorted(seen.items())]


def main() -> int:
    """Fill ./wheelhouse; exit status 1 if a package could not be had for a platform."""
    out = Path("wheelhouse")
    out.mkdir(exist_ok=True)
    pins = {}
    for line in Path("constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[canonicalize_name(name)] = version.strip()
    if not pip("wheel", "--no-deps", "--wheel-dir", str(out), "."):
        return 1
    notes = []
    for machine, tags in PLATFORMS.items():
        for spec in runtime_closure(pins, machine):
            args = [
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--dest",
                str(out),
                "--implementation",
                "cp",
                "--python-version",
                "3.11",
            ]
            args += [arg for tag in tags for arg in ("--platform", tag)]
            if machine == "armv7l" and os.environ.get("PIWHEELS") == "1":
                args += ["--extra-index-url", "https://www.piwheels.org/simple"]
            if pip(*args, spec, quiet=True):  # failure reported below
                continue
            name = spec.split("==")[0]
            if name in PURE_FALLBACK_ENV:
                ok = pip(
                    "wheel",
                    "--no-deps",
                    "--no-binary",
                    name,
                    "--wheel-dir",
                    str(out),
                    spec,
                    env=PURE_FALLBACK_ENV[name],
                )
                notes.append(
                    f"{machine}: {spec}: no binary wheel; "
                    + ("pure-Python wheel built (works, slower)" if ok else "FAILED")
                )
            else:
                # Only this package from source: its build requirements may come as wheels.
                ok = pip("download", "--no-deps", "--no-binary", name, "--dest", str(out), spec)
                notes.append(
                    f"{machine}: {spec}: no binary wheel; sdist only "
                    + ("(needs a compiler on the gateway)" if ok else "FAILED")
                )
    print(f"wheelhouse: {len(list(out.glob('*.whl')))} wheels in {out}/")
    for note in notes:
        print(f"wheelhouse: {note}")
    return 1 if any("FAILED" in note for note in notes) else 0


if __name__ == "__main__":
    sys.exit(main())
