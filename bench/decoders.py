"""Serial drivers' decode speed: microseconds per reading, stream decoder fed like a source does.

Part of `make bench`; on its own: `.venv/bin/python bench/decoders.py [--json]`.

Each case is a realistic byte stream of one driver (frames as its sensor sends them), fed in
4 KiB slices to a fresh `StreamDecoder` (as `gateway/sources/serial/source.py` does), with every
frame's measurements built, as the source emits them. Reported: the fastest of 7 runs, time
per reading and per frame. A new driver adds one row to CASES.

The Modbus meters (sdm120, sdm630) have no stream: `gateway/sources/modbus/source.py` decodes the
answer to each request with `eastron.read_response`, so their rows time that, over one poll's
answers (a frame here is one answer: a register block).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from drivers import eastron, maxbotix, new_stream, pms5003, sds011
from drivers.base import Measurement

SLICE = 4096
RUNS = 7
TARGET_READINGS = 200_000


@dataclass(frozen=True)
class Case:
    name: str
    driver: str
    options: dict[str, object]
    frames: Callable[[int], bytes]
    """n -> the wire bytes of frame number n."""


def _ops243_plain(n: int) -> bytes:
    return f"{(-1) ** n * (30 + n % 400 / 10):.1f}\r\n".encode()


def _ops243_json(n: int) -> bytes:
    speed = (-1) ** n * (30 + n % 400 / 10)
    return b'{"unit":"kmh","speed":"%.1f"}\r\n' % speed


CASES = (
    Case("sds011", "sds011", {}, lambda n: sds011.encode_data(n % 999, 20.5, device_id=0xA160)),
    Case(
        "pms5003",
        "pms5003",
        {},
        lambda n: pms5003.encode_data(pms5003.DataFrame(*(n % 500 for _ in range(12)), 0x9700)),
    ),
    Case("ops243 plain km/h", "ops243", {"units": "kmh"}, _ops243_plain),
    Case("ops243 JSON", "ops243", {"units": "kmh", "json": True}, _ops243_json),
    Case(
        "maxbotix MB7389 + level",
        "maxbotix",
        {"model": "MB7389", "mount_height_mm": 4200},
        lambda n: maxbotix.encode(300 + n % 4000, model="MB7389"),
    ),
)


def _run(case: Case, stream: bytes) -> tuple[float, int, int]:
    decoder = new_stream(case.driver, **case.options)
    readings = frames = 0
    sink: list[Measurement] = []
    start = time.perf_counter()
    for offset in range(0, len(stream), SLICE):
        decoded = decoder.feed(stream[offset : offset + SLICE])
        frames += len(decoded)
        sink = [m for frame in decoded for m in frame.measurements]
        readings += len(sink)
    return time.perf_counter() - start, frames, readings


def measure(case: Case) -> dict[str, object]:
    per_frame = len(new_stream(case.driver, **case.options).feed(case.frames(1))[0].measurements)
    count = TARGET_READINGS // max(per_frame, 1)
    stream = b"".join(case.frames(n) for n in range(count))
    runs = [_run(case, stream) for _ in range(RUNS)]
    seconds = min(r[0] for r in runs)  # the least disturbed run (as timeit): 2 shared cores
    _, frames, readings = runs[0]
    assert frames == count, (case.name, frames, count)
    return {
        "case": case.name,
        "readings_per_frame": per_frame,
        "frames": frames,
        "us_per_reading": round(seconds / readings * 1e6, 3),
        "us_per_frame": round(seconds / frames * 1e6, 3),
    }


def measure_modbus(model: str) -> dict[str, object]:
    """One poll's answers of a `model` meter (every block), decoded as the modbus source does."""
    answers = []
    for index, block in enumerate(eastron.blocks(model)):
        registers = [0] * block.count
        for register in eastron.REGISTERS[model]:
            offset = register.address - block.start_register
            if 0 <= offset < block.count:
                registers[offset : offset + 2] = eastron.float_registers(230.1 + offset + index)
        request = eastron.ReadRequest(7, block.start_register, block.count)
        answers.append((eastron.encode_response(7, registers), request))
    polls = TARGET_READINGS // len(eastron.REGISTERS[model])
    runs = []
    for _ in range(RUNS):
        readings = 0
        start = time.perf_counter()
        for _ in range(polls):
            for wire, request in answers:
                readings += len(eastron.read_response(wire, request, model=model).measurements)
        runs.append(time.perf_counter() - start)
    seconds = min(runs)  # the least disturbed run, as for the serial drivers
    return {
        "case": f"{model} (Modbus, {len(answers)} answers a poll)",
        "readings_per_frame": round(readings / polls / len(answers), 1),
        "frames": polls * len(answers),
        "us_per_reading": round(seconds / readings * 1e6, 3),
        "us_per_frame": round(seconds / (polls * len(answers)) * 1e6, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON object per case")
    args = parser.parse_args()
    results = [measure(case) for case in CASES]
    results += [measure_modbus(model) for model in eastron.MODELS]
    if args.json:
        for result in results:
            print(json.dumps(result))
        return
    print("| driver | readings/frame | us/reading | us/frame |")
    print("| --- | --- | --- | --- |")
    for r in results:
        print(
            f"| {r['case']} | {r['readings_per_frame']} | {r['us_per_reading']} "
            f"| {r['us_per_frame']} |"
        )


if __name__ == "__main__":
    main()
