"""py-spy on the running agent, and the hot spots from its raw (collapsed-stack) output."""

from __future__ import annotations

import re
import shutil
import signal
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.procs import Child, Children, Pinning

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]*):(?P<line>\d+)\)$")
_THREAD = re.compile(r"^thread \(\d+\): (?P<name>.*)$")


def py_spy_binary() -> str | None:
    local = Path(sys.executable).with_name("py-spy")
    if local.exists():
        return str(local)
    return shutil.which("py-spy")


@dataclass(frozen=True)
class Spot:
    function: str
    file: str
    line: int  # the hottest line within the function
    percent: float
    thread: str
    caller: str = ""  # the most frequent calling function (own-time spots only)

    def as_dict(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "file": self.file,
            "line": self.line,
            "percent": round(self.percent, 1),
            "thread": self.thread,
            "caller": self.caller,
        }


def _parse_frame(text: str) -> tuple[str, str, int]:
    match = _FRAME.match(text)
    if match is None:
        return text, "", 0
    return match["func"], match["file"], int(match["line"])


_DISPATCH = ("BaseEventLoop._run_once", "_WorkItem.run")


def _below_dispatch(frames: list[str]) -> int:
    """Index just below the last event-loop or thread-pool dispatch frame (0 if none)."""
    for index in range(len(frames) - 1, -1, -1):
        if frames[index].startswith(_DISPATCH):
            return index + 1
    return 0


def _thread_kind(name: str) -> str:
    if name.startswith("citygw-buffer"):
        return "buffer (SQLite worker)"
    if name == "MainThread":
        return "event loop"
    return name


def hot_spots(raw: str, top: int = 10) -> dict[str, Any]:
    """Self time (the leaf frame) and inclusive time per function, as % of all samples."""
    self_time: Counter[tuple[str, str, str]] = Counter()
    self_lines: dict[tuple[str, str, str], Counter[int]] = {}
    callers: dict[tuple[str, str, str], Counter[str]] = {}
    inclusive: Counter[tuple[str, str, str]] = Counter()
    per_thread: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = "?"
        thread_match = _THREAD.match(frames[0])
        if thread_match:
            thread = _thread_kind(thread_match["name"])
            frames = frames[1:]
        if not frames:
            continue
        total += count
        per_thread[thread] += count
        func, file, lineno = _parse_frame(frames[-1])
        key = (func, file, thread)
        self_time[key] += count
        self_lines.setdefault(key, Counter())[lineno] += count
        if len(frames) > 1:
            caller, caller_file, caller_line = _parse_frame(frames[-2])
            callers.setdefault(key, Counter())[f"{caller} ({caller_file}:{caller_line})"] += count
        seen = set()
        for frame in frames[_below_dispatch(frames) :]:
            f, fl, _ = _parse_frame(frame)
            if (f, fl) not in seen:
                seen.add((f, fl))
                inclusive[(f, fl, thread)] += count
    if not total:
        return {"samples": 0, "self": [], "inclusive": [], "threads": {}}

    def spot(key: tuple[str, str, str], count: int, lines: Counter[int] | None) -> Spot:
        line = lines.most_common(1)[0][0] if lines else 0
        caller = callers.get(key)
        return Spot(
            key[0],
            key[1],
            line,
            100.0 * count / total,
            key[2],
            caller.most_common(1)[0][0] if caller else "",
        )

    # The project's functions below the event loop's or the executor's dispatch (not the entry
    # chain cli.main -> agent.run), without the executor lambdas that only forward a call.
    ours = [
        (k, c)
        for k, c in inclusive.most_common()
        if k[1].startswith(("gateway/", "drivers/")) and not k[0].endswith("<lambda>")
    ]
    return {
        "samples": total,
        "threads": {t: round(100.0 * c / total, 1) for t, c in per_thread.most_common()},
        "self": [spot(k, c, self_lines[k]).as_dict() for k, c in self_time.most_common(top)],
        "inclusive": [spot(k, c, None).as_dict() for k, c in ours[:top]],
    }


class Profiler:
    """`py-spy record` attached to a pid, non-blocking, until stopped (SIGINT writes the file)."""

    def __init__(self, children: Children, pinning: Pinning, out: Path, rate: int = 200) -> None:
        self.out = out
        self.rate = rate
        self._children = children
        self._pinning = pinning
        self.child: Child | None = None
        self.binary = py_spy_binary()

    def start(self, pid: int, max_duration_s: int) -> None:
        assert self.binary is not None
        argv = [
            self.binary,
            "record",
            "--pid",
            str(pid),
            "--rate",
            str(self.rate),
            "--nonblocking",
            "--threads",
            "--format",
            "raw",
            "--duration",
            str(max_duration_s),
            "-o",
            str(self.out),
        ]
        self.child = self._children.start(
            "py-spy", self._pinning.other(argv), log_path=self.out.with_suffix(".log")
        )

    def stop(self) -> str:
        if self.child is None:
            return ""
        self._children.stop(self.child, sig=signal.SIGINT, grace_s=30.0)
        return self.out.read_text() if self.out.exists() else ""
