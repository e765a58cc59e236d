"""The chaos slice: bench/chaos.py for a few minutes with every fault kind, as CI runs it
(`make chaos-slice`, part of `make test`; deselected by `make pytest`).

It asserts that the accounting is exact and the harness works, and that no reading is lost
outside the documented power-cut window (with a margin for a slow machine: see WINDOW_SLACK_S).
Recovery times are reported, not asserted: on a shared 2-core machine they vary with the load;
the full run (`make chaos`, BENCHMARKS.md) judges them against the 15 s goal.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from skips import skip_or_fail

pytestmark = [pytest.mark.integration, pytest.mark.chaos, pytest.mark.timeout(450)]

REPO_ROOT = Path(__file__).resolve().parents[2]
MINUTES = 3.5  # plus setup, recovery waits and the drain: about 5 minutes in all
SEED = int(os.environ.get("CITYGW_CHAOS_SEED", "16"))
WINDOW_SLACK_S = 0.5
"""How far before a kill -9 a lost reading may have been written beyond the documented window
(commit_interval_ms): the commit timer counts from the start of the previous commit (issue 16
measured 1.12 s for a 1 s window), and a loaded machine delays a commit further. A reading
lost earlier than window + slack before a kill, or lost with no kill after it, fails."""


def test_chaos_slice_accounts_for_every_reading_and_loses_none_outside_the_window(
    tmp_path: Path,
) -> None:
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        skip_or_fail("mosquitto not installed (Debian package 'mosquitto'; make deps as root)")
    done = subprocess.run(
        [sys.executable, "bench/chaos.py", "--minutes", str(MINUTES), "--seed", str(SEED),
         "--json", "--recovery-timeout", "60", "--drain-timeout", "60"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=420, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"the chaos run failed:\n{done.stderr[-6000:]}"
    report = json.loads(done.stdout)
    (tmp_path / "chaos-report.json").write_text(done.stdout)
    print(done.stderr[-4000:])  # the run's progress, shown with -rP or on failure
    summary = {k: report[k] for k in ("lost_by_cause", "recovery", "problems", "notes")}
    shown = json.dumps(summary, indent=1)

    # the accounting is exact: every offered reading is delivered or lost with a cause
    assert report["unaccounted"] == 0, shown
    assert report["readings_delivered"] + report["readings_lost"] == report["readings_offered"]
    assert not report["phantoms"], shown
    assert report["hub_decode_errors"] == 0
    # the harness works: frames flowed, every fault kind was injected and was over in the end
    assert report["frames_offered"] >= MINUTES * 60 * report["rate_frames_per_s"] * 0.8
    skipped = set(report["skipped"])
    for kind in ("kill9", "broker_restart", "broker_hang", "unplug", "garbage", "invalid_config"):
        assert report["faults_by_kind"].get(kind, 0) >= 1, kind
    if "disk_full" not in skipped:
        assert report["faults_by_kind"].get("disk_full", 0) >= 1
    assert report["faults_by_kind"]["kill9"] >= 5
    for kind, figures in report["recovery"].items():
        assert figures["not_recovered"] == 0, f"{kind} never recovered:\n{shown}"
    for refusal in report["invalid_config_refusals"]:
        assert refusal["exit_code"] == 2, refusal
        assert refusal["message_exact"], refusal
        assert refusal["buffer_identical"], refusal
    # the gateway's promises: nothing lost outside the window, each reading stored once
    window_s = report["window_s"]
    outside = [
        lost
        for lost in report["lost_other"]
        if lost["before_next_kill_s"] is None
        or lost["before_next_kill_s"] > window_s + WINDOW_SLACK_S
    ]
    assert not outside, f"readings lost outside the documented window:\n{shown}"
    assert report["duplicates_after_dedupe"] == 0, shown
