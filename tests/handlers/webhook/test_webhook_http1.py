"""The webhook HTTP/1.1 client against raw asyncio servers on 127.0.0.1: keep-alive reuse
only for checked addresses, chunked bodies, bounded reads (no reuse after a cut-off body),
a stale pooled connection retried once, close-delimited bodies and bad answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from conveyor.handlers.webhook.http1 import ConnectionPool, ProtocolError

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
Answerer = Callable[[int], bytes]  # request number -> raw answer


class RawServer:
    def __init__(self, answer: Answerer, close_after: bool = False) -> None:
        self.answer = answer
        self.close_after = close_after
        self.connections = 0
        self.requests = 0
        self.port = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
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


async def post(pool: ConnectionPool, port: int, limit: int = 4096) -> tuple[int, bytes]:
    answer = await pool.post(
        f"http://127.0.0.1:{port}/h",
        ["127.0.0.1"],
        b"{}",
        {"content-length": "2"},
        limit=limit,
        connect_timeout=1.0,
    )
    return answer.status, answer.body


async def test_keep_alive_reuses_one_connection() -> None:
    pool = ConnectionPool()
    async with raw_server(lambda n: OK) as srv:
        for _ in range(5):
            assert await post(pool, srv.port) == (200, b"ok")
    pool.close()
    assert srv.connections == 1 and srv.requests == 5


async def test_pooled_connection_only_for_a_checked_address() -> None:
    pool = ConnectionPool()
    async with raw_server(lambda n: OK) as srv:
        assert await post(pool, srv.port) == (200, b"ok")
        # the same URL, but this delivery's checked address differs: no reuse
        with pytest.raises(OSError):
            await pool.post(
                f"http://127.0.0.1:{srv.port}/h",
                ["127.0.0.2"],
                b"{}",
                {"content-length": "2"},
                limit=10,
                connect_timeout=0.5,
            )
    pool.close()
    assert srv.connections == 1 and srv.requests == 1


async def test_chunked_body_and_reuse() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    pool = ConnectionPool()
    async with raw_server(lambda n: chunked) as srv:
        assert await post(pool, srv.port) == (200, b"abcde")
        assert await post(pool, srv.port) == (200, b"abcde")
    pool.close()
    assert srv.connections == 1


async def test_body_beyond_the_limit_is_cut_and_the_connection_dropped() -> None:
    big = b"HTTP/1.1 500 Oops\r\ncontent-length: 100000\r\n\r\n" + b"x" * 100_000
    pool = ConnectionPool()
    async with raw_server(lambda n: big) as srv:
        assert await post(pool, srv.port, limit=10) == (500, b"x" * 10)
        assert await post(pool, srv.port, limit=10) == (500, b"x" * 10)
    pool.close()
    assert srv.connections == 2


async def test_stale_keep_alive_connection_is_retried_on_a_fresh_one() -> None:
    pool = ConnectionPool()
    async with raw_server(lambda n: OK, close_after=True) as srv:
        assert await post(pool, srv.port) == (200, b"ok")
        await asyncio.sleep(0.05)  # the server has closed the pooled connection
        assert await post(pool, srv.port) == (200, b"ok")
    pool.close()
    assert srv.connections == 2 and srv.requests == 2


async def test_close_delimited_body_and_interim_response() -> None:
    raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 202 Accepted\r\n\r\nqueued"
    pool = ConnectionPool()
    async with raw_server(lambda n: raw, close_after=True) as srv:
        assert await post(pool, srv.port) == (202, b"queued")
    pool.close()


async def test_garbage_answer_is_a_protocol_error() -> None:
    pool = ConnectionPool()
    async with raw_server(lambda n: b"SSH-2.0-OpenSSH\r\n\r\n") as srv:
        with pytest.raises(ProtocolError):
            await post(pool, srv.port)
    pool.close()
