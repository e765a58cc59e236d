"""The sensors' side: writes real SDS011 data frames into pseudo-terminals as fast as they drain.

Run by bench/run.py as `python -m bench.feeder LINK... --readings N [--mode bulk|first-frame]`.
Talks JSON lines on stdout:

    {"event": "ptys"}                       the symlinks exist: start the agent now
    {"event": "attached", "t": ...}         the agent opened every port and sent its start
                                            commands (opening a port flushes its input, so
                                            nothing is written before this)
    bulk:        waits for "go" on stdin, then (optionally paced with --rate)
    {"event": "start", "t": ...}            first byte about to be written (time.monotonic(),
                                            which is system-wide on Linux)
    {"event": "written", "t": ..., ...}     every frame accepted by the ptys
    first-frame: writes one frame per port at once, then {"event": "written", ...}

Then it keeps the ptys open (a closed master is an unplugged sensor) until stdin closes.
Each SDS011 frame is 10 bytes and carries 2 readings (PM2.5, PM10).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
import time
from typing import Any

from drivers import sds011
from gateway.devtools.sim_serial import open_pty

READINGS_PER_FRAME = 2
FRAME = sds011.SENSOR_FRAME_LEN  # 10 bytes
CHUNK_FRAMES = 6553  # 65,530 bytes: whole frames per write call
DISTINCT_VALUES = 997  # a prime, so PM2.5 and PM10 drift against each other


def say(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def frames_for(device_id: int, count: int, offset: int) -> bytes:
    """`count` consecutive data frames with varying 0.1-resolution values, as a sensor sends."""
    out = bytearray()
    for i in range(offset, offset + count):
        pm2_5 = 5.0 + (i * 7 % DISTINCT_VALUES) / 10
        pm10 = 8.0 + (i * 13 % DISTINCT_VALUES) / 10
        out += sds011.encode_data(pm2_5, pm10, device_id=device_id)
    return bytes(out)


def host_attached(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return not any(events & select.POLLHUP for _, events in poller.poll(0))


def drain(fd: int) -> int:
    """Read what the agent wrote to the sensor (its commands); bytes read."""
    total = 0
    while True:
        try:
            data = os.read(fd, 4096)
        except (BlockingIOError, OSError):
            return total
        if not data:
            return total
        total += len(data)


def wait_attached(fds: list[int], timeout_s: float) -> None:
    """Until the agent has every port open and has written its start commands to each."""
    seen = dict.fromkeys(fds, 0)
    end = time.monotonic() + timeout_s
    while not all(seen.values()):
        if time.monotonic() > end:
            missing = [fd for fd, n in seen.items() if not n]
            raise TimeoutError(
                f"agent did not open {len(missing)} of {len(fds)} ports within {timeout_s:.0f} s"
            )
        for fd in fds:
            if host_attached(fd):
                seen[fd] += drain(fd)
        time.sleep(0.005)
    time.sleep(0.05)  # the last command bytes; the port was flushed before the first
    for fd in fds:
        drain(fd)


def write_all(fds: list[int], frames_per_fd: list[int], rate: float = 0.0) -> int:
    """Write each port's share of frames in big chunks: as fast as the agent drains the ptys,
    or paced to `rate` readings/s in all (a schedule, checked every few milliseconds)."""
    chunks = {fd: frames_for(0xA160 + i, CHUNK_FRAMES, 0) for i, fd in enumerate(fds)}
    total = {fd: n * sds011.SENSOR_FRAME_LEN for fd, n in zip(fds, frames_per_fd, strict=True)}
    done = dict.fromkeys(fds, 0)
    position = dict.fromkeys(fds, 0)  # offset into the repeating chunk
    all_bytes = sum(total.values())
    bytes_per_s = rate / READINGS_PER_FRAME * sds011.SENSOR_FRAME_LEN
    start = time.monotonic()
    while any(done[fd] < total[fd] for fd in fds):
        allowed = dict(total)
        if rate > 0:  # each port's share of what the schedule allows by now, in whole frames
            due = (time.monotonic() - start) * bytes_per_s
            allowed = {
                fd: min(total[fd], int(due * total[fd] / all_bytes) // FRAME * FRAME) for fd in fds
            }
        active = [fd for fd in fds if done[fd] < allowed[fd]]
        if not active:
            time.sleep(0.002)
            continue
        _, writable, _ = select.select([], active, [], 0.01 if rate > 0 else 5.0)
        for fd in writable:
            chunk = chunks[fd]
            start_at = position[fd]
            end_at = min(len(chunk), start_at + allowed[fd] - done[fd])
            try:
                n = os.write(fd, memoryview(chunk)[start_at:end_at])
            except BlockingIOError:
                continue
            done[fd] += n
            position[fd] = (start_at + n) % len(chunk)
    return sum(done.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("links", nargs="+", help="symlink paths for the ptys")
    parser.add_argument("--readings", type=int, default=0, help="bulk: readings in all")
    parser.add_argument("--mode", choices=["bulk", "first-frame"], default="bulk")
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="bulk: offered load in readings/s (0: as fast as the ptys drain)",
    )
    parser.add_argument("--attach-timeout", type=float, default=60.0)
    args = parser.parse_args()

    fds = [open_pty(link)[0] for link in args.links]
    say("ptys", links=args.links)
    try:
        wait_attached(fds, args.attach_timeout)
    except TimeoutError as error:
        say("error", message=str(error))
        return 1
    say("attached", t=time.monotonic())

    if args.mode == "first-frame":
        for i, fd in enumerate(fds):
            os.write(fd, frames_for(0xA160 + i, 1, 0))
        say("written", t=time.monotonic(), frames=len(fds), readings=len(fds) * READINGS_PER_FRAME)
    else:
        frames = args.readings // READINGS_PER_FRAME
        share = [frames // len(fds) + (1 if i < frames % len(fds) else 0) for i in range(len(fds))]
        if sys.stdin.readline().strip() != "go":
            return 0
        start = time.monotonic()
        say("start", t=start)
        written = write_all(fds, share, args.rate)
        say(
            "written",
            t=time.monotonic(),
            bytes=written,
            frames=sum(share),
            readings=sum(share) * READINGS_PER_FRAME,
            per_port_frames=share,
        )

    # Keep the sensors plugged in until the bench is done with the agent.
    while sys.stdin.readline():
        pass
    for fd in fds:
        drain(fd)
        os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
