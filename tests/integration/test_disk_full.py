"""A full disk: readings wait in memory and reach the buffer about a second after space is back.

On a real small file system (a tmpfs with a size limit, mounted by the test: needs root), filled
with a file until ENOSPC, so SQLite meets the error a full SD card gives.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.base import Measurement
from gateway.agent.ingest import RETRY_MAX_S, Ingest
from gateway.store.buffer import SqliteBuffer
from gateway.store.worker import AsyncBuffer

pytestmark = pytest.mark.integration


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted on a fresh directory, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root")
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(path: Path) -> None:
    """Write `path` until the file system has no byte left."""
    with path.open("wb", buffering=0) as filler:
        with contextlib.suppress(OSError):
            while True:
                filler.write(bytes(64 * 1024))
        with contextlib.suppress(OSError):
            while True:
                filler.write(bytes(512))
        with pytest.raises(OSError) as full:
            filler.write(b"x")
        assert full.value.errno == errno.ENOSPC


def emit(ingest: Ingest, first: int, count: int) -> None:
    for n in range(first, first + count):
        ingest.emit("pm", [Measurement("pm2_5_ugm3", float(n), "ug/m3")], n)


async def test_readings_staged_on_a_full_disk_are_committed_within_2_s_of_space_returning(
    small_disk: Path,
) -> None:
    buffer = AsyncBuffer(lambda: SqliteBuffer(small_disk / "buffer.db", max_readings=100_000))
    await buffer.open()
    ingest = Ingest(buffer, commit_interval_s=0.05, commit_max=5000, staging_max=20_000)
    committer = asyncio.create_task(ingest.run())
    try:
        emit(ingest, 0, 100)
        async with asyncio.timeout(5):
            while ingest.accepted < 100:  # noqa: ASYNC110 - the ingest has no event for it
                await asyncio.sleep(0.01)
        fill(small_disk / "filler")
        emit(ingest, 100, 12_000)  # ~130 KB of chunks: more than any slack in the files
        async with asyncio.timeout(30):  # failures in a row: a growing backoff would now wait
            while ingest.write_errors < 5:  # noqa: ASYNC110 - up to 16 s (0.5 s doubled 5 times)
                await asyncio.sleep(0.01)
        assert ingest.accepted == 100, "nothing reached the full disk"
        (small_disk / "filler").unlink()
        freed = time.monotonic()
        async with asyncio.timeout(2 * RETRY_MAX_S + 1):
            while ingest.accepted < 12_100:  # noqa: ASYNC110 - staged is 0 while a commit runs
                await asyncio.sleep(0.01)
        recovered_s = time.monotonic() - freed
        assert recovered_s < 2.0, recovered_s
        got = [r[3] for r in await buffer.peek(0, 20_000)]
        assert got == [float(n) for n in range(12_100)]
        assert ingest.dropped_staging == 0
    finally:
        committer.cancel()
        await asyncio.gather(committer, return_exceptions=True)
        await buffer.close()
