"""Mosquitto with a second listener: TLS (a throwaway CA made with openssl) and password auth.

The ``secure_broker`` fixture (tests/integration/conftest.py) starts one per test with
``start_secure_broker``; ``agent_config`` is an agent's config for it, with the password in a
file. Used by test_uplink_security.py and test_journal_logging.py."""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PASSWORD = "s3cret-streetlight-pw"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(directory: Path) -> None:
    """A CA and a server certificate for 127.0.0.1 (subjectAltName), as a city's PKI would."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        "req",
        "-x509",
        *ec,
        "-days",
        "2",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-subj",
        "/CN=citygw test CA",
        cwd=directory,
    )
    _openssl(
        "req",
        *ec,
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
        cwd=directory,
    )
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        "server.crt",
        "-extfile",
        "san.ext",
        cwd=directory,
    )


@dataclass
class SecureBroker:
    broker: Any
    url: str
    pki: Path


def start_secure_broker(tmp_path: Path, make_broker: Any) -> SecureBroker:
    pki = tmp_path / "pki"
    pki.mkdir()
    make_pki(pki)
    passwords = pki / "passwords"
    passwords.write_text("")
    subprocess.run(
        ["mosquitto_passwd", "-b", str(passwords), "gw-sec", PASSWORD],
        check=True,
        capture_output=True,
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    broker = make_broker(
        extra_config="\n".join(
            [
                f"listener {port} 127.0.0.1",
                f"cafile {pki / 'ca.crt'}",
                f"certfile {pki / 'server.crt'}",
                f"keyfile {pki / 'server.key'}",
                "allow_anonymous false",
                f"password_file {passwords}",
            ]
        )
    )
    return SecureBroker(broker, f"mqtts://127.0.0.1:{port}", pki)


def agent_config(tmp_path: Path, secure: SecureBroker, port: Path, **hub: Any) -> dict[str, Any]:
    password_file = tmp_path / "hub-password"
    password_file.write_text(hub.pop("password", PASSWORD) + "\n")
    password_file.chmod(0o600)
    return {
        "gateway": {"id": "gw-sec", "data_dir": str(tmp_path / "data")},
        "hub": {
            "url": secure.url,
            "username": "gw-sec",
            "password_file": str(password_file),
            "flush_interval_s": 0.2,
            "reconnect_min_s": 0.2,
            "reconnect_max_s": 0.5,
            **hub,
        },
        "buffer": {"commit_interval_ms": 50},
        "sources": [{"type": "serial", "name": "pm", "port": str(port), "driver": "sds011"}],
    }
