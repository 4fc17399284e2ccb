"""The webhook aiohttp client against raw asyncio servers on 127.0.0.1: no name resolution
(a host name goes to the checked address with its own Host header), keep-alive reuse only
for the same checked addresses, chunked bodies, bounded reads (no reuse after a cut-off
body), a stale pooled connection retried once, close-delimited bodies and bad answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import pytest

from conveyor.handlers.webhook.aio import AioPool, PinnedResolver, ProtocolError

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
HOST = "hooks.example.invalid"
Answerer = Callable[[int], bytes]  # request number -> raw answer


class RawServer:
    def __init__(self, answer: Answerer, close_after: bool = False) -> None:
        self.answer = answer
        self.close_after = close_after
        self.connections = 0
        self.requests = 0
        self.heads: list[bytes] = []
        self.port = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                self.requests += 1
                writer.write(self.answer(self.requests))
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


@asynccontextmanager
async def raw_server(answer: Answerer, close_after: bool = False) -> AsyncIterator[RawServer]:
    srv = RawServer(answer, close_after)
    server = await asyncio.start_server(srv.serve, "127.0.0.1", 0)
    srv.port = server.sockets[0].getsockname()[1]
    try:
        yield srv
    finally:
        server.close()


@asynccontextmanager
async def aio_pool() -> AsyncIterator[AioPool]:
    pool = AioPool()
    try:
        yield pool
    finally:
        await pool.aclose()


async def post(
    pool: AioPool,
    port: int,
    limit: int = 4096,
    host: str = "127.0.0.1",
    addresses: Sequence[str] = ("127.0.0.1",),
) -> tuple[int, bytes]:
    answer = await pool.post(
        f"http://{host}:{port}/h",
        addresses,
        b"{}",
        {"content-type": "application/json"},
        limit=limit,
        connect_timeout=1.0,
    )
    return answer.status, answer.body


async def test_keep_alive_reuses_one_connection() -> None:
    async with raw_server(lambda n: OK) as srv, aio_pool() as pool:
        for _ in range(5):
            assert await post(pool, srv.port) == (200, b"ok")
    assert srv.connections == 1 and srv.requests == 5


async def test_host_name_goes_to_the_checked_address_without_resolution() -> None:
    # ".invalid" never resolves (RFC 6761): the request can only arrive if nothing looked it up
    async with raw_server(lambda n: OK) as srv, aio_pool() as pool:
        assert await post(pool, srv.port, host=HOST) == (200, b"ok")
    assert srv.requests == 1
    assert f"host: hooks.example.invalid:{srv.port}".encode() in srv.heads[0].lower()


async def test_pinned_resolver_answers_only_for_its_host() -> None:
    resolver = PinnedResolver("hooks.example", ["192.0.2.7", "2001:db8::7"])
    answers = await resolver.resolve("hooks.example", 443)
    assert [(a["host"], a["hostname"], a["port"]) for a in answers] == [
        ("192.0.2.7", "hooks.example", 443),
        ("2001:db8::7", "hooks.example", 443),
    ]
    with pytest.raises(OSError):
        await resolver.resolve("other.example", 443)


async def test_pooled_connection_only_for_the_same_checked_addresses() -> None:
    async with raw_server(lambda n: OK) as srv, aio_pool() as pool:
        assert await post(pool, srv.port, host=HOST) == (200, b"ok")
        # the same URL, but this delivery's checked address differs: the connection to
        # 127.0.0.1 must not be reused; nothing listens on 127.0.0.2:port
        with pytest.raises(OSError):
            await post(pool, srv.port, host=HOST, addresses=["127.0.0.2"])
        assert await post(pool, srv.port, host=HOST) == (200, b"ok")
    assert srv.connections == 1 and srv.requests == 2


async def test_ip_literal_must_be_a_checked_address() -> None:
    async with raw_server(lambda n: OK) as srv, aio_pool() as pool:
        with pytest.raises(ConnectionError):
            await post(pool, srv.port, addresses=["127.0.0.2"])
    assert srv.connections == 0


async def test_chunked_body_and_reuse() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    async with raw_server(lambda n: chunked) as srv, aio_pool() as pool:
        assert await post(pool, srv.port) == (200, b"abcde")
        assert await post(pool, srv.port) == (200, b"abcde")
    assert srv.connections == 1


async def test_body_beyond_the_limit_is_cut_and_the_connection_dropped() -> None:
    # far more than aiohttp buffers ahead (READ_BUFSIZE): the response cannot be complete
    size = 4_000_000
    big = b"HTTP/1.1 500 Oops\r\ncontent-length: %d\r\n\r\n" % size + b"x" * size
    async with raw_server(lambda n: big) as srv, aio_pool() as pool:
        assert await post(pool, srv.port, limit=10) == (500, b"x" * 10)
        assert await post(pool, srv.port, limit=10) == (500, b"x" * 10)
    assert srv.connections == 2


async def test_stale_keep_alive_connection_is_retried_on_a_fresh_one() -> None:
    async with raw_server(lambda n: OK, close_after=True) as srv, aio_pool() as pool:
        assert await post(pool, srv.port) == (200, b"ok")
        await asyncio.sleep(0.05)  # the server has closed the pooled connection
        assert await post(pool, srv.port) == (200, b"ok")
    assert srv.connections == 2 and srv.requests == 2


async def test_close_delimited_body_and_interim_response() -> None:
    raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 202 Accepted\r\n\r\nqueued"
    async with raw_server(lambda n: raw, close_after=True) as srv, aio_pool() as pool:
        assert await post(pool, srv.port) == (202, b"queued")


async def test_garbage_answer_is_a_protocol_or_connection_error() -> None:
    async with raw_server(lambda n: b"SSH-2.0-OpenSSH\r\n\r\n") as srv, aio_pool() as pool:
        with pytest.raises((ProtocolError, ConnectionError)):
            await post(pool, srv.port)
