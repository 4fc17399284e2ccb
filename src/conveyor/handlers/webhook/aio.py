"""Webhook POSTs over aiohttp, pinned to the addresses the SSRF check approved.

Called by ``conveyor.handlers.webhook.transport`` only.

* **No name resolution.** Each pool has a ``PinnedResolver`` that answers only for its host
  name, with exactly the checked addresses; aiohttp's DNS cache is off.
* **Pools keyed by the checked set.** aiohttp pools keep-alive connections by
  (host, port, ssl), not by the address a connection went to, so one shared connector could
  hand a connection opened to an address checked earlier to a delivery whose check no longer
  returns it. Each (scheme, host, port, sorted checked addresses) therefore gets its own
  session and connector, whose resolver returns only that set: a pooled connection is reused
  only when this delivery's check produced the very same set. The number of pools is bounded
  (least recently used ones are closed).
* TLS: SNI and certificate verification against the URL's host name (aiohttp passes the
  resolver's ``hostname`` as ``server_hostname``).
* An IP-literal URL is connected to as written (aiohttp never asks the resolver for one), so
  it is refused unless the literal is itself among the checked addresses.
* No redirects, no cookies, no proxies (``trust_env`` off), no decompression. At most
  ``limit`` bytes of the body are returned. aiohttp buffers at most about ``READ_BUFSIZE``
  ahead of that; a connection goes back to the pool only if the whole response was
  received, otherwise it is closed.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

MAX_POOLS = 256
READ_BUFSIZE = 64 * 1024
KEEPALIVE_TIMEOUT = 30.0
PoolKey = tuple[str, str, int, tuple[str, ...]]  # scheme, host, port, checked addresses


class ProtocolError(Exception):
    """The receiver's answer is not valid HTTP/1.x."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-cased names; repeated headers joined with ", "
    body: bytes  # at most the limit


class PinnedResolver(AbstractResolver):
    """Answers for one host name with exactly the addresses that were checked."""

    def __init__(self, host: str, addresses: Sequence[str]) -> None:
        self._host = host
        self._addresses = tuple(addresses)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host != self._host:
            raise OSError(f"no checked addresses for {host!r}")
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
            for address in self._addresses
        ]

    async def close(self) -> None:
        return None


class AioPool:
    """The aiohttp sessions of one event loop, one per checked destination."""

    def __init__(self, *, verify: bool = True) -> None:
        self._sessions: OrderedDict[PoolKey, aiohttp.ClientSession] = OrderedDict()
        self._ssl = ssl.create_default_context()
        if not verify:
            self._ssl.check_hostname = False
            self._ssl.verify_mode = ssl.CERT_NONE

    async def aclose(self) -> None:
        sessions = list(self._sessions.values())
        self._sessions.clear()
        for session in sessions:
            await session.close()

    async def _session(self, key: PoolKey) -> aiohttp.ClientSession:
        session = self._sessions.get(key)
        if session is not None:
            self._sessions.move_to_end(key)
            return session
        _, host, _, addresses = key
        connector = aiohttp.TCPConnector(
            resolver=PinnedResolver(host, addresses),
            use_dns_cache=False,
            ttl_dns_cache=0,
            limit=0,
            keepalive_timeout=KEEPALIVE_TIMEOUT,
            ssl=self._ssl,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            trust_env=False,
            read_bufsize=READ_BUFSIZE,
        )
        self._sessions[key] = session
        while len(self._sessions) > MAX_POOLS:
            _, old = self._sessions.popitem(last=False)
            # a request still in flight on the evicted pool fails as a connection error (and
            # is retried by the job); only the least recently used of MAX_POOLS is evicted
            await old.close()
        return session

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
        if _is_ip_literal(host) and host not in addresses:
            raise ConnectionError(f"{host} is not among the checked addresses")
        session = await self._session((scheme, host, port, tuple(sorted(addresses))))
        sent = {k: v for k, v in headers.items() if k.lower() != "content-length"}
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout)
        try:
            return await self._exchange(session, url, body, sent, limit=limit, timeout=timeout)
        except aiohttp.ServerDisconnectedError:
            # a pooled connection the server had closed before answering: aiohttp does not
            # retry a POST, so try once more (on a fresh connection, the stale one is gone);
            # receivers deduplicate by webhook-id
            pass
        try:
            return await self._exchange(session, url, body, sent, limit=limit, timeout=timeout)
        except aiohttp.ServerDisconnectedError as exc:
            raise ConnectionError("server disconnected without sending a response") from exc

    async def _exchange(
        self,
        session: aiohttp.ClientSession,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        limit: int,
        timeout: aiohttp.ClientTimeout,
    ) -> Answer:
        try:
            resp = await session.post(
                URL(url, encoded=True),
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=timeout,
            )
        except aiohttp.ServerDisconnectedError:
            raise
        except TimeoutError:
            raise
        except aiohttp.ClientResponseError as exc:
            raise ProtocolError(str(exc) or type(exc).__name__) from exc
        except aiohttp.ClientError as exc:
            raise ConnectionError(str(exc) or type(exc).__name__) from exc
        try:
            data = await _read_at_most(resp.content, limit)
            complete = resp.content.at_eof()
        except aiohttp.ClientPayloadError as exc:
            resp.close()
            raise ProtocolError(str(exc) or type(exc).__name__) from exc
        except aiohttp.ClientError as exc:
            resp.close()
            raise ConnectionError(str(exc) or type(exc).__name__) from exc
        except BaseException:
            resp.close()
            raise
        if complete:
            resp.release()
        else:
            resp.close()  # unread body: drop the connection rather than pool it
        answer_headers: dict[str, str] = {}
        for raw_name, value in resp.headers.items():
            name = raw_name.lower()
            prev = answer_headers.get(name)
            answer_headers[name] = value if prev is None else f"{prev}, {value}"
        return Answer(resp.status, answer_headers, data)


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def _read_at_most(content: aiohttp.StreamReader, limit: int) -> bytes:
    data = bytearray()
    while len(data) < limit:
        chunk = await content.read(limit - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)
