"""A minimal HTTP/1.1 client for webhook POSTs: asyncio streams, keep-alive, no DNS.

Called by ``conveyor.handlers.webhook.transport`` only. It exists because httpx/httpcore
cost about 1 ms of CPU per request under load (the pool rescans every connection, with a
``poll`` syscall per idle one, on each request and release), which capped a worker at a few
hundred deliveries per second; this costs a small fraction of that.

* **Connects only to the given addresses** (the ones ``ssrf.check_destination`` checked);
  it never resolves a name. An idle connection is pooled under (scheme, host, port, address)
  and reused only when that address is among the current delivery's checked addresses.
* TLS (``https``): certificate and SNI against the URL's host name, not the address.
* **Bounded reads**: the response head may be at most ``MAX_HEAD`` bytes; at most
  ``limit`` bytes of the body are read. A connection whose body was not read to its end is
  closed rather than reused. No redirects are followed (a 3xx is just a status).
* A reused keep-alive connection the server had already closed (nothing at all came back)
  is retried once on a fresh connection; receivers deduplicate by ``webhook-id`` anyway.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, unquote, urlsplit

MAX_HEAD = 64 * 1024
MAX_IDLE_PER_KEY = 128
PoolKey = tuple[str, str, int, str]  # scheme, host, port, address


class ProtocolError(Exception):
    """The receiver's answer is not valid HTTP/1.x."""


class StaleConnection(Exception):
    """A reused connection was closed by the server before any byte of an answer."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-cased names; repeated headers joined with ", "
    body: bytes  # at most the limit


@dataclass(slots=True)
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0

    def usable(self, now: float, expiry: float) -> bool:
        return (
            not self.writer.is_closing()
            and not self.reader.at_eof()
            and now - self.idle_since < expiry
        )

    def close(self) -> None:
        self.writer.close()


class ConnectionPool:
    """Idle keep-alive connections of one event loop."""

    def __init__(self, *, verify: bool = True, keepalive_expiry: float = 30.0) -> None:
        self._idle: dict[PoolKey, list[_Conn]] = {}
        self._expiry = keepalive_expiry
        self._ssl = ssl.create_default_context()
        if not verify:
            self._ssl.check_hostname = False
            self._ssl.verify_mode = ssl.CERT_NONE

    def close(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

    def _take(self, key: PoolKey) -> _Conn | None:
        conns = self._idle.get(key)
        now = time.monotonic()
        while conns:
            conn = conns.pop()
            if conn.usable(now, self._expiry):
                return conn
            conn.close()
        return None

    def _give(self, key: PoolKey, conn: _Conn) -> None:
        conns = self._idle.setdefault(key, [])
        if len(conns) >= MAX_IDLE_PER_KEY:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        conns.append(conn)

    async def _connect(
        self, scheme: str, host: str, port: int, addresses: Sequence[str], timeout: float
    ) -> tuple[PoolKey, _Conn]:
        last: Exception | None = None
        for address in addresses:
            try:
                async with asyncio.timeout(timeout):
                    if scheme == "https":
                        reader, writer = await asyncio.open_connection(
                            address, port, ssl=self._ssl, server_hostname=host, limit=MAX_HEAD
                        )
                    else:
                        reader, writer = await asyncio.open_connection(
                            address, port, limit=MAX_HEAD
                        )
                return (scheme, host, port, address), _Conn(reader, writer)
            except (OSError, TimeoutError) as exc:
                last = exc
        if isinstance(last, TimeoutError):
            raise TimeoutError(f"connect to {host}:{port} timed out")
        raise ConnectionError(f"could not connect to {host}:{port}: {last}")

    async def post(
        self,
        url: str,
        addresses: Sequence[str],
        body: bytes,
        headers: Mapping[str, str],
        *,
        limit: int,
        connect_timeout: float,
    ) -> Answer:
        """POST ``body`` to ``url`` over a connection to one of ``addresses``."""
        parts = urlsplit(url)
        scheme, host = parts.scheme, (parts.hostname or "")
        port = parts.port or (443 if scheme == "https" else 80)
        head = _request_head(parts.path or "/", parts.query, _host_header(parts), parts, headers)
        message = head + body
        for address in addresses:
            key: PoolKey = (scheme, host, port, address)
            conn = self._take(key)
            if conn is None:
                continue
            try:
                return await self._exchange(key, conn, message, limit, reused=True)
            except StaleConnection:
                break  # the server dropped idle connections: use a fresh one
        key, conn = await self._connect(scheme, host, port, addresses, connect_timeout)
        try:
            return await self._exchange(key, conn, message, limit, reused=False)
        except StaleConnection:
            raise ConnectionError("server disconnected without sending a response") from None

    async def _exchange(
        self, key: PoolKey, conn: _Conn, message: bytes, limit: int, *, reused: bool
    ) -> Answer:
        keep = False
        try:
            conn.writer.write(message)
            try:
                status, headers, http10 = await _read_head(conn.reader)
            except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError) as exc:
                partial = getattr(exc, "partial", b"")
                if reused and not partial:
                    raise StaleConnection from None
                raise ConnectionError("server disconnected without a complete response") from exc
            body, complete = await _read_body(conn.reader, headers, status, limit)
            connection = headers.get("connection", "").lower()
            keep = complete and not http10 and "close" not in connection
            return Answer(status, headers, body)
        finally:
            if keep:
                self._give(key, conn)
            else:
                conn.close()


def _host_header(parts: SplitResult) -> str:
    return parts.netloc.rsplit("@", 1)[-1]


def _request_head(
    path: str, query: str, host: str, parts: SplitResult, headers: Mapping[str, str]
) -> bytes:
    target = f"{path}?{query}" if query else path
    lines = [f"POST {target} HTTP/1.1", f"Host: {host}"]
    names = {name.lower() for name in headers}
    username = parts.username
    if username is not None and "authorization" not in names:
        password = parts.password or ""
        token = base64.b64encode(f"{unquote(username)}:{unquote(password)}".encode()).decode()
        lines.append(f"Authorization: Basic {token}")
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bool]:
    """The final response's status, headers and whether it is HTTP/1.0 (1xx are skipped)."""
    while True:
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise ProtocolError("response head too large") from None
        lines = raw[:-4].decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise ProtocolError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
        status = int(code)
        if 100 <= status < 200:
            continue
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise ProtocolError(f"bad header line: {line[:80]!r}")
            name, value = name.lower(), value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        return status, headers, version == "HTTP/1.0"


async def _read_body(
    reader: asyncio.StreamReader, headers: Mapping[str, str], status: int, limit: int
) -> tuple[bytes, bool]:
    """Up to ``limit`` bytes of the body, and whether the body was read to its end."""
    if status in (204, 304):
        return b"", True
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return await _read_chunked(reader, limit)
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise ProtocolError(f"bad content-length: {length[:40]!r}")
        size = int(length)
        data = await reader.readexactly(min(size, limit))
        return data, size <= limit
    data = await reader.read(limit)  # delimited by close: never reusable
    return data, False


async def _read_chunked(reader: asyncio.StreamReader, limit: int) -> tuple[bytes, bool]:
    data = bytearray()
    while len(data) < limit:
        line = await reader.readuntil(b"\r\n")
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ProtocolError("bad chunk size") from None
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass  # trailers
            return bytes(data), True
        take = min(size, limit - len(data))
        data += await reader.readexactly(take)
        if take < size:
            return bytes(data), False
        await reader.readexactly(2)
    return bytes(data), False
