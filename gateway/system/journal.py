"""Logging straight to journald with structured fields (the native journal protocol).

Under systemd the agent's stderr is connected to the journal ($JOURNAL_STREAM names it); then
each log record goes to journald as one datagram of fields instead of one line of text:
MESSAGE, PRIORITY, CODE_FILE/CODE_LINE/CODE_FUNC, SYSLOG_IDENTIFIER=citygw, CITYGW_LOGGER, the
handler's own fields (CITYGW_GATEWAY) and whatever the call gives with ``extra=``, named
CITYGW_<KEY> (``log.warning(..., extra={"source": name, "event": "vanished"})`` gives
CITYGW_SOURCE and CITYGW_EVENT), so `journalctl -u citygw CITYGW_SOURCE=pm-north` works.

The protocol (systemd's "Native Journal Protocol"): ``KEY=value\\n`` per field, or for a value
with a newline ``KEY\\n`` + its length as 64-bit little endian + the value + ``\\n``. A record
too large for one datagram goes in a sealed memfd whose descriptor is sent instead. No
dependency on python-systemd. Elsewhere (a terminal, a test, no journal) the CLI logs plain
lines to stderr as before.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import socket
import struct
import sys
from collections.abc import Mapping

JOURNAL_SOCKET = "/run/systemd/journal/socket"
# For tests and unusual systems: another path for journald's socket.
SOCKET_ENV = "CITYGW_JOURNAL_SOCKET"
IDENTIFIER = "citygw"
FIELD_PREFIX = "CITYGW_"

# syslog(3) priorities for logging's levels (NOTICE, 5, has no logging level).
_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))
_FIELD_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
# Attributes every LogRecord has: anything else on a record came from ``extra=``.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}
_MEMFD_SEALS = (
    getattr(fcntl, "F_SEAL_SHRINK", 0x0002)
    | getattr(fcntl, "F_SEAL_GROW", 0x0004)
    | getattr(fcntl, "F_SEAL_WRITE", 0x0008)
    | getattr(fcntl, "F_SEAL_SEAL", 0x0001)
)


def stderr_is_journal(stderr_fd: int = 2) -> bool:
    """True if $JOURNAL_STREAM ("device:inode", set by systemd) is our stderr. A child that
    inherited the variable but whose stderr was redirected elsewhere gets False."""
    device, _, inode = os.environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        st = os.fstat(stderr_fd)
        return (int(device), int(inode)) == (st.st_dev, st.st_ino)
    except (ValueError, OSError):
        return False


def priority(levelno: int) -> int:
    """The syslog priority journald expects for a logging level."""
    for threshold, value in _PRIORITIES:
        if levelno >= threshold:
            return value
    return 7  # DEBUG and below


def field_name(key: str) -> str | None:
    """CITYGW_<KEY> for an ``extra=`` key, or None if it cannot be a journal field name."""
    name = key.upper()
    if not name.startswith(FIELD_PREFIX):
        name = FIELD_PREFIX + name
    return name if _FIELD_NAME.fullmatch(name) else None


def encode_fields(fields: Mapping[str, str]) -> bytes:
    """One native-protocol message: KEY=value lines, length-prefixed where a value has a
    newline. Raises ValueError for a name journald would reject."""
    parts = []
    for name, value in fields.items():
        if not _FIELD_NAME.fullmatch(name):
            raise ValueError(f"journal field name {name!r}: need A-Z, 0-9, _ (at most 64)")
        data = value.encode("utf-8", "replace")
        if b"\n" in data:
            parts.append(name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n")
        else:
            parts.append(name.encode() + b"=" + data + b"\n")
    return b"".join(parts)


class JournalHandler(logging.Handler):
    """Sends each record to journald's socket as structured fields.

    ``fields`` are added to every record (e.g. {"CITYGW_GATEWAY": "gw-0042"}). When journald
    cannot be reached the record is written to stderr as a plain line instead (which systemd
    also puts in the journal, without the fields), so nothing is lost silently.
    """

    def __init__(
        self,
        *,
        socket_path: str | None = None,
        fields: Mapping[str, str] | None = None,
        identifier: str = IDENTIFIER,
        level: int = logging.NOTSET,
    ) -> None:
        super().__init__(level)
        self.socket_path = socket_path or os.environ.get(SOCKET_ENV) or JOURNAL_SOCKET
        self.fields = {"SYSLOG_IDENTIFIER": identifier, **(fields or {})}
        encode_fields(self.fields)  # a bad name fails here, not at every record
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        self._fallback = logging.Formatter("%(levelname)s %(name)s: %(message)s")
        self._sock: socket.socket | None = None

    def record_fields(self, record: logging.LogRecord) -> dict[str, str]:
        """What goes to the journal for ``record`` (the formatted message with its traceback,
        if any, is MESSAGE)."""
        fields = {
            "MESSAGE": self.format(record),
            "PRIORITY": str(priority(record.levelno)),
            "CODE_FILE": record.pathname,
            "CODE_LINE": str(record.lineno),
            **({"CODE_FUNC": record.funcName} if record.funcName else {}),
            **self.fields,
            "CITYGW_LOGGER": record.name,
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                name = field_name(key)
                if name is not None and name not in fields:
                    fields[name] = str(value)
        return fields

    def emit(self, record: logging.LogRecord) -> None:
        """Send the record as one journald datagram; never raises (logging's handleError)."""
        try:
            message = encode_fields(self.record_fields(record))
        except Exception:
            self.handleError(record)
            return
        try:
            self._send(message)
        except OSError:
            self._write_stderr(record)

    def _socket(self) -> socket.socket:
        if self._sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            # A stuck journald must not hang the event loop for long (stderr would, too).
            sock.settimeout(1.0)
            self._sock = sock
        return self._sock

    def _send(self, message: bytes) -> None:
        sock = self._socket()
        try:
            sock.sendto(message, self.socket_path)
        except OSError as error:
            if error.errno not in (errno.EMSGSIZE, errno.ENOBUFS):
                raise
            self._send_memfd(sock, message)

    def _send_memfd(self, sock: socket.socket, message: bytes) -> None:
        """A message larger than a datagram: in a sealed memfd, its descriptor sent alone."""
        fd = os.memfd_create("citygw-journal", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            view = memoryview(message)
            while view:
                view = view[os.write(fd, view) :]
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _MEMFD_SEALS)
            rights = (socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd))
            sock.sendmsg([b""], [rights], 0, self.socket_path)
        finally:
            os.close(fd)

    def _write_stderr(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self._fallback.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        """Close the journald socket."""
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
        super().close()


def log_handler(*, fields: Mapping[str, str] | None = None) -> logging.Handler:
    """A JournalHandler if stderr is the journal, else a plain stderr handler (no formatter:
    the caller sets the line format)."""
    if stderr_is_journal():
        return JournalHandler(fields=fields)
    return logging.StreamHandler(sys.stderr)
