"""The few glibc calls the agent makes through ctypes: malloc tuning and the clock's state.

`ctypes.CDLL(None)` reaches libc through the symbols the interpreter already has loaded;
`ctypes.util.find_library` would pull in shutil, tempfile, subprocess and friends (~0.3 MB of
RSS) and run a subprocess to answer. Every call degrades to a no-op where the symbol is missing
(musl, macOS): these are optimisations, not features.
"""

from __future__ import annotations

import ctypes
import functools

_M_ARENA_MAX = -8  # mallopt(3)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _call(name: str, *args: object) -> int | None:
    libc = _libc()
    function = getattr(libc, name, None) if libc is not None else None
    if function is None:
        return None
    result: int = function(*args)
    return result


def limit_malloc_arenas(arenas: int) -> bool:
    """glibc gives each thread its own arena, which keeps what it freed: one is enough here."""
    return bool(_call("mallopt", _M_ARENA_MAX, arenas))


def ntp_adjtime_state() -> int | None:
    """The clock state from ntp_adjtime(2) in read-only mode (modes = 0); None where missing."""
    timex = ctypes.create_string_buffer(512)  # struct timex, large enough on every ABI
    return _call("ntp_adjtime", timex)
