"""A real HTTP/1.1 receiver on 127.0.0.1 for webhook tests (asyncio streams, no framework):
records every connection and request, answers from a script of responses, and can hang.

Not a mock: deliveries go through the real transport, TCP and HTTP parsing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    hang: bool = False  # never answer (until the client gives up)


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    at: float  # time.monotonic()


REASONS = {
    200: "OK",
    204: "No Content",
    302: "Found",
    410: "Gone",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Receiver:
    """``async with Receiver() as r``: ``r.url``, ``r.requests``, ``r.connections``.

    Replies: ``script`` is consumed in order, then ``default`` (or ``respond(seen)``).
    """

    def __init__(
        self,
        default: Reply | None = None,
        script: list[Reply] | None = None,
        respond: Callable[[Seen], Reply] | None = None,
    ) -> None:
        self.default = default or Reply()
        self.script = list(script or [])
        self.respond = respond
        self.requests: list[Seen] = []
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._closing = asyncio.Event()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def __aenter__(self) -> Receiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self._closing.set()  # hanging replies give up
        for writer in list(self._writers):
            writer.transport.abort()  # idle keep-alive connections end with a read error
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def wait_for(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.requests)} of {count} requests arrived")
            await asyncio.sleep(0.002)

    def _next(self, seen: Seen) -> Reply:
        if self.script:
            return self.script.pop(0)
        if self.respond is not None:
            return self.respond(seen)
        return self.default

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        seen = Seen(method, path, headers, body, time.monotonic())
        self.requests.append(seen)
        reply = self._next(seen)
        if reply.hang:
            await self._closing.wait()
            return False
        status_line = f"HTTP/1.1 {reply.status} {REASONS.get(reply.status, 'Status')}\r\n"
        out_headers = {"content-length": str(len(reply.body)), **reply.headers}
        raw = status_line + "".join(f"{k}: {v}\r\n" for k, v in out_headers.items()) + "\r\n"
        writer.write(raw.encode("latin-1") + reply.body)
        await writer.drain()
        return True
