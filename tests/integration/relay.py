"""A TCP relay between the agent and the broker, for tests that need to see or slow the link.

`Relay(broker)` keeps every byte the agent sends (one bytearray per connection, `streams`);
`Relay(broker, delay_s=0.3)` also delays what the broker sends back (PUBACKs included) by that
much, in order. Use it as an async context manager: on exit it stops listening and cuts the
connections it relays.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Any


class Relay:
    """Listens on 127.0.0.1 (`url`) and relays each connection to `broker`."""

    def __init__(self, broker: Any, *, delay_s: float = 0.0) -> None:
        self.broker, self.delay_s, self.url = broker, delay_s, ""
        self.streams: list[bytearray] = []
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> Relay:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.url = f"mqtt://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.broker.host, self.broker.port)
        self._writers |= {writer, up_writer}
        sent = bytearray()
        self.streams.append(sent)
        loop = asyncio.get_running_loop()
        late: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def up() -> None:
            with contextlib.suppress(OSError):
                while data := await reader.read(65536):
                    sent.extend(data)
                    up_writer.write(data)
                    await up_writer.drain()
            up_writer.close()

        async def down_read() -> None:
            with contextlib.suppress(OSError):
                while data := await up_reader.read(65536):
                    late.put_nowait((loop.time() + self.delay_s, data))
            late.put_nowait((loop.time() + self.delay_s, b""))

        async def down_write() -> None:
            with contextlib.suppress(OSError):
                while True:
                    due, data = await late.get()
                    await asyncio.sleep(max(0.0, due - loop.time()))
                    if not data:
                        break
                    writer.write(data)
                    await writer.drain()
            writer.close()

        await asyncio.gather(up(), down_read(), down_write())
