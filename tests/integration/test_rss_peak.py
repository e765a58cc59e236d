"""The agent's `rss_peak_bytes` is its own peak, not that of the process that started it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gateway.agent.health import rss_bytes

pytestmark = pytest.mark.integration

BALLAST_BYTES = 256 * 1024 * 1024

CHILD = "from gateway.agent.health import rss_bytes; print(*rss_bytes())"


def test_a_child_started_by_a_large_parent_reports_its_own_peak() -> None:
    ballast = b"\x01" * BALLAST_BYTES  # resident in this process: every page written
    assert rss_bytes()[1] >= BALLAST_BYTES
    done = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, timeout=30
    )
    current, peak = (int(field) for field in done.stdout.split())
    assert 0 < current <= peak < BALLAST_BYTES // 4, (current, peak)
    del ballast
