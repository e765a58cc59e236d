"""A fast slice of `make fuzz`: a few thousand mutated messages per hub decoder, in-process."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parents[1] / "fuzz" / "hub_fuzz.py"


def load_fuzzer():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("hub_fuzz", FUZZ)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("hub_fuzz", module)
    spec.loader.exec_module(module)
    return module


fuzzer = load_fuzzer()


@pytest.mark.parametrize("target", fuzzer.TARGETS)
def test_mutated_messages_give_readings_or_an_invalid_event_in_bounded_time(target: str) -> None:
    report = fuzzer.run(target, 3000, seed=20261207)
    assert report.findings == []
    assert report.decoded > 100 and report.invalid > 100  # the mutations reach both outcomes
    assert report.slowest_s < fuzzer.MAX_SECONDS
