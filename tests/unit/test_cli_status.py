"""`citygw status` with no agent running: buffer figures from the file, or why it cannot read it."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.base import Measurement
from gateway.cli import main
from gateway.readings import Columns, SeriesIndex
from gateway.store.buffer import SqliteBuffer


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(
        f'[gateway]\nid = "gw-1"\ndata_dir = "{tmp_path / "data"}"\n\n'
        '[hub]\nurl = "mqtt://127.0.0.1:1"\n'
    )
    return path


def three_readings() -> Columns:
    readings = Columns(SeriesIndex())
    readings.add("pm", [Measurement("pm2_5_ugm3", 1.5, "ug/m3")] * 3, 1_700_000_000_000)
    return readings


def test_status_reads_the_buffer_at_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path)
    buffer = SqliteBuffer(tmp_path / "data" / "buffer.db", max_readings=100)
    buffer.append(three_readings())
    buffer.close()
    assert main(["status", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "agent not running" in out and "buffer: 3 readings waiting" in out


def test_status_says_why_it_cannot_read_a_buffer_held_by_another_process(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The agent holds its buffer exclusively (a stray agent without its status socket, say):
    status names the file and SQLite's reason instead of a traceback."""
    path = write_config(tmp_path)
    held = SqliteBuffer(tmp_path / "data" / "buffer.db", max_readings=100)
    held.append(three_readings())
    try:
        assert main(["status", "--config", str(path)]) == 0
    finally:
        held.close()
    out = capsys.readouterr().out
    assert f"buffer: unknown (cannot read {tmp_path / 'data' / 'buffer.db'}: " in out
    assert "locked" in out


def test_status_and_run_read_the_installed_config_by_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """docs/install.md writes `citygw status` without --config."""
    from gateway.config import DEFAULT_PATH

    if DEFAULT_PATH.exists():
        pytest.skip(f"{DEFAULT_PATH} exists here: the command would read a real gateway's")
    for command in ("status", "run"):
        assert main([command]) == 2
        assert f"{DEFAULT_PATH}: cannot read" in capsys.readouterr().err
