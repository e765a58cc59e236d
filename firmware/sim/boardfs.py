"""The virtual board's flash for `mpremote` (MicroPython, run by board.mjs; not a board module).

A VFS (the protocol `os.mount` takes) whose files live in a host directory: board.mjs registers
`hostfs`, a JavaScript module doing the host file I/O (bytes cross as hex). It raises OSError
with the errno numbers of a real board (ENOENT 2, EEXIST 17, ...), where the WebAssembly port's
own filesystem says 44 for ENOENT and mpremote then fails. Files opened for reading are read
whole into a BytesIO, so `import` loads .py and .mpy from here as from a board's flash.
"""

import io
import os
import sys

import hostfs

ENOENT = 2
EEXIST = 17
ENOTDIR = 20
EISDIR = 21
ENOTEMPTY = 39
S_IFDIR = 0x4000
S_IFREG = 0x8000
ERRNO_BY_NAME = {
    "ENOENT": ENOENT,
    "EEXIST": EEXIST,
    "ENOTDIR": ENOTDIR,
    "EISDIR": EISDIR,
    "ENOTEMPTY": ENOTEMPTY,
}


def _check(result):
    """hostfs answers "!ENAME" on failure: raise it as a board's OSError."""
    if isinstance(result, str) and result.startswith("!"):
        raise OSError(ERRNO_BY_NAME.get(result[1:], 5))
    return result


class _Writer:
    """A file opened for writing: every write goes to the host file at once."""

    def __init__(self, path):
        self._path = path

    def write(self, data):
        if isinstance(data, str):
            data = data.encode()
        if data:  # (an empty bytes' hex() is b"" on this port, not "")
            _check(hostfs.append(self._path, bytes(data).hex()))
        return len(data)

    def flush(self):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class HostFS:
    """Files under a host directory, as the board's filesystem."""

    def __init__(self):
        self._cwd = "/"

    def _path(self, path):
        if not path.startswith("/"):
            path = self._cwd.rstrip("/") + "/" + path
        parts = []
        for part in path.split("/"):
            if part == "..":
                if parts:
                    parts.pop()
            elif part and part != ".":
                parts.append(part)
        return "/" + "/".join(parts)

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def chdir(self, path):
        path = self._path(path)
        if _check(hostfs.kind(path)) != "dir":
            raise OSError(ENOTDIR)
        self._cwd = path

    def getcwd(self):
        return self._cwd

    def stat(self, path):
        kind, size = _check(hostfs.stat(self._path(path))).split(" ")
        mode = S_IFDIR if kind == "dir" else S_IFREG
        return (mode, 0, 0, 0, 0, 0, int(size), 0, 0, 0)

    def ilistdir(self, path):
        names = _check(hostfs.listdir(self._path(path)))
        for entry in names.split("/") if names else ():
            name, kind, size = entry.split(" ")
            yield (name, S_IFDIR if kind == "dir" else S_IFREG, 0, int(size))

    def open(self, path, mode):
        path = self._path(path)
        if "r" in mode and "+" not in mode:
            data = bytes.fromhex(_check(hostfs.read(path)))
            return io.BytesIO(data) if "b" in mode else io.StringIO(data.decode())
        if "w" in mode:
            _check(hostfs.write(path, ""))
        elif "a" in mode:
            _check(hostfs.append(path, ""))
        else:
            raise OSError(22)  # EINVAL: r+ is not needed by mpremote or the firmware
        return _Writer(path)

    def remove(self, path):
        _check(hostfs.remove(self._path(path)))

    def rename(self, old, new):
        _check(hostfs.rename(self._path(old), self._path(new)))

    def mkdir(self, path):
        _check(hostfs.mkdir(self._path(path)))

    def rmdir(self, path):
        _check(hostfs.rmdir(self._path(path)))

    def statvfs(self, path):
        return (4096, 4096, 512, 256, 256, 0, 0, 0, 0, 255)


class BoardSys:
    """`sys` as the board would have it: the platform this virtual board plays (esp32, rp2)."""

    def __init__(self, platform):
        self.platform = platform
        self._sys = sys

    def __getattr__(self, name):
        return getattr(self._sys, name)


def install(platform):
    """Put HostFS at / (cwd /) and make `import sys` report `platform`."""
    os.umount("/")
    os.mount(HostFS(), "/")
    os.chdir("/")
    sys.modules["sys"] = BoardSys(platform)
