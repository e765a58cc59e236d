"""gateway.system.journal against a real unix datagram socket standing in for journald's socket.

The stand-in parses the native journal protocol itself (as journald does), including messages
passed as a sealed memfd, so these tests check the bytes on the socket, not the encoder's view."""

from __future__ import annotations

import array
import fcntl
import inspect
import logging
import os
import socket
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.system import journal


def parse_native(data: bytes) -> dict[str, str]:
    """journald's reading of a native-protocol message (KEY=value, or KEY\\n<u64 LE>value\\n)."""
    fields: dict[str, str] = {}
    while data:
        line_end = data.index(b"\n")
        line = data[:line_end]
        if b"=" in line:
            name, _, value = line.partition(b"=")
            data = data[line_end + 1 :]
        else:
            name = line
            (size,) = struct.unpack("<Q", data[line_end + 1 : line_end + 9])
            value = data[line_end + 9 : line_end + 9 + size]
            assert data[line_end + 9 + size : line_end + 10 + size] == b"\n"
            data = data[line_end + 10 + size :]
        assert name.decode() not in fields, f"field {name!r} twice"
        fields[name.decode()] = value.decode()
    return fields


class FakeJournald:
    """A bound AF_UNIX datagram socket; ``receive()`` returns the raw message, reading it from
    the memfd when one was passed (checking that it is sealed, as journald does)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(2.0)
        self.memfds = 0

    def receive(self) -> bytes:
        fds = array.array("i")
        data, ancdata, _, _ = self.sock.recvmsg(1 << 20, socket.CMSG_LEN(fds.itemsize))
        for level, kind, payload in ancdata:
            if (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS):
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
        if not fds:
            return data
        assert data == b"" and len(fds) == 1
        fd = fds[0]
        try:
            seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
            assert seals & fcntl.F_SEAL_WRITE and seals & fcntl.F_SEAL_SHRINK, "memfd not sealed"
            self.memfds += 1
            with os.fdopen(os.dup(fd), "rb") as memfd:
                memfd.seek(0)
                return memfd.read()
        finally:
            os.close(fd)

    def fields(self) -> dict[str, str]:
        return parse_native(self.receive())


@pytest.fixture
def journald(tmp_path: Path) -> Iterator[FakeJournald]:
    fake = FakeJournald(tmp_path / "journal.socket")
    yield fake
    fake.sock.close()


@pytest.fixture
def logger(journald: FakeJournald) -> Iterator[logging.Logger]:
    handler = journal.JournalHandler(
        socket_path=str(journald.path), fields={"CITYGW_GATEWAY": "gw-0042"}
    )
    log = logging.getLogger("citygw.test.journal")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    yield log
    log.removeHandler(handler)
    handler.close()


def test_a_record_arrives_with_exactly_these_fields(
    journald: FakeJournald, logger: logging.Logger
) -> None:
    line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
    logger.warning(
        "source %s: %s vanished",
        "pm-north",
        "/dev/ttyUSB0",
        extra={"source": "pm-north", "event": "vanished"},
    )
    assert journald.fields() == {
        "MESSAGE": "citygw.test.journal: source pm-north: /dev/ttyUSB0 vanished",
        "PRIORITY": "4",
        "CODE_FILE": __file__,
        "CODE_LINE": str(line),
        "CODE_FUNC": "test_a_record_arrives_with_exactly_these_fields",
        "SYSLOG_IDENTIFIER": "citygw",
        "CITYGW_GATEWAY": "gw-0042",
        "CITYGW_LOGGER": "citygw.test.journal",
        "CITYGW_SOURCE": "pm-north",
        "CITYGW_EVENT": "vanished",
    }


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        (logging.CRITICAL, "2"),
        (logging.ERROR, "3"),
        (logging.WARNING, "4"),
        (logging.INFO, "6"),
        (logging.DEBUG, "7"),
    ],
)
def test_levels_map_to_syslog_priorities(
    journald: FakeJournald, logger: logging.Logger, level: int, expected: str
) -> None:
    logger.log(level, "x")
    assert journald.fields()["PRIORITY"] == expected


def test_a_traceback_is_one_multi_line_message(
    journald: FakeJournald, logger: logging.Logger
) -> None:
    try:
        raise RuntimeError("disk on fire")
    except RuntimeError:
        logger.exception("commit failed")
    raw = journald.receive()
    message = parse_native(raw)["MESSAGE"]
    assert message.startswith("citygw.test.journal: commit failed\nTraceback")
    assert message.endswith("RuntimeError: disk on fire")
    # A value with a newline is sent length-prefixed, never as KEY=value.
    assert b"MESSAGE\n" + struct.pack("<Q", len(message.encode())) in raw


def test_a_message_larger_than_a_datagram_goes_in_a_sealed_memfd(
    journald: FakeJournald, logger: logging.Logger
) -> None:
    big = "x" * 600_000  # over the default socket send buffer (~208 KiB)
    logger.info("reply %s", big)
    assert journald.fields()["MESSAGE"] == f"citygw.test.journal: reply {big}"
    assert journald.memfds == 1
    logger.info("small again")
    assert journald.fields()["MESSAGE"] == "citygw.test.journal: small again"
    assert journald.memfds == 1


def test_extra_keys_that_cannot_be_field_names_are_left_out(
    journald: FakeJournald, logger: logging.Logger
) -> None:
    logger.info(
        "x",
        extra={
            "bad-key": 1,
            "readings": 14,
            "citygw_port": "/dev/ttyS0",
            "gateway": "not the handler's",
        },
    )
    fields = journald.fields()
    assert fields["CITYGW_READINGS"] == "14"
    assert fields["CITYGW_PORT"] == "/dev/ttyS0"
    assert fields["CITYGW_GATEWAY"] == "gw-0042"  # the handler's fields are not overridden
    assert not any("BAD" in name for name in fields)


def test_without_journald_records_go_to_stderr_as_plain_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = journal.JournalHandler(socket_path=str(tmp_path / "nobody-listens"))
    record = logging.LogRecord(
        "citygw.agent", logging.WARNING, __file__, 1, "hub %s down", ("h1",), None
    )
    handler.emit(record)
    handler.close()
    assert capsys.readouterr().err == "WARNING citygw.agent: hub h1 down\n"


def test_stderr_is_the_journal_only_when_journal_stream_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (tmp_path / "stream").open("w") as stream, (tmp_path / "other").open("w") as other:
        st = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert journal.stderr_is_journal(stream.fileno())
        assert not journal.stderr_is_journal(other.fileno())  # inherited, but redirected
        monkeypatch.setenv("JOURNAL_STREAM", "garbage")
        assert not journal.stderr_is_journal(stream.fileno())
        monkeypatch.delenv("JOURNAL_STREAM")
        assert not journal.stderr_is_journal(stream.fileno())


def test_log_handler_picks_the_journal_under_systemd(
    journald: FakeJournald, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    plain = journal.log_handler()
    assert type(plain) is logging.StreamHandler and plain.stream is sys.stderr
    st = os.fstat(2)
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    monkeypatch.setenv(journal.SOCKET_ENV, str(journald.path))
    handler = journal.log_handler(fields={"CITYGW_GATEWAY": "gw-7"})
    assert isinstance(handler, journal.JournalHandler)
    handler.emit(logging.LogRecord("citygw", logging.INFO, __file__, 1, "up", None, None))
    handler.close()
    assert journald.fields()["CITYGW_GATEWAY"] == "gw-7"


def test_bad_handler_field_names_are_refused_up_front() -> None:
    with pytest.raises(ValueError, match="journal field name 'gateway'"):
        journal.JournalHandler(fields={"gateway": "gw-1"})
    with pytest.raises(ValueError, match="_PID"):
        journal.JournalHandler(fields={"_PID": "1"})  # trusted fields are journald's
