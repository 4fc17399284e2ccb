"""The HTTP side of a webhook attempt: POST to an address that was checked, never another.

Called by the webhook handler with a ``Destination`` from ``ssrf.check_destination``.

* **Pinned connections.** ``PinnedNetworkBackend`` is an httpcore network backend whose
  ``connect_tcp`` ignores DNS: it connects only to the addresses checked for that host in the
  current delivery (a context variable set around the request, visible because httpcore opens
  connections in the requesting task). A host with no checked addresses is refused, so no
  code path can ever resolve a name a second time. The URL keeps its host name, so the
  ``Host`` header, TLS SNI and certificate verification are all against the name.
  A pooled keep-alive connection is reused only for the same scheme/host/port, and it goes to
  an address that passed the check when it was opened.
* **No redirects** (``follow_redirects=False``); the handler records a 3xx as a failure.
* **Bounded.** A connect timeout and a total timeout per attempt; the response body is read
  as a raw stream (no decompression) up to ``excerpt_bytes`` and the rest is dropped.
* No environment proxies (``trust_env=False``): a proxy would resolve the name itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta

import httpcore
import httpx

from conveyor.handlers.webhook.ssrf import Destination

DEFAULT_CONNECT_TIMEOUT = timedelta(seconds=5)
DEFAULT_TOTAL_TIMEOUT = timedelta(seconds=30)
DEFAULT_EXCERPT_BYTES = 4096
USER_AGENT = "Conveyor-Webhooks/0.1"

SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)

# host -> the addresses checked for it in the current delivery (set around each request).
_pins: ContextVar[Mapping[str, tuple[str, ...]] | None] = ContextVar(
    "conveyor_webhook_pins", default=None
)


def _host_key(host: str) -> str:
    return host.strip("[]").lower()


class PinnedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Connects to the checked addresses of the host, in order, never resolving it."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = (_pins.get() or {}).get(_host_key(host))
        if not addresses:
            raise httpcore.ConnectError(f"no checked address for {host}; refusing to resolve it")
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks never connect to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` whose pool uses ``PinnedNetworkBackend``.

    httpx does not take a network backend, so the pool built by the base class is replaced
    by an equivalent one that has it (``_pool`` is the attribute the base class sends on).
    """

    def __init__(self, *, verify: bool = True, limits: httpx.Limits | None = None) -> None:
        limits = limits or httpx.Limits(
            max_connections=None, max_keepalive_connections=200, keepalive_expiry=30.0
        )
        super().__init__(verify=verify, trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PinnedNetworkBackend(),
        )


@dataclass(frozen=True, slots=True)
class HTTPResult:
    """What one attempt got back. ``status`` is None when no response arrived; ``error``
    then says why (``timeout`` or ``connection``) and ``detail`` carries the message."""

    status: int | None
    latency: timedelta
    excerpt: str = ""
    retry_after: str | None = None
    error: str | None = None
    detail: str = ""

    @property
    def latency_ms(self) -> float:
        return round(self.latency.total_seconds() * 1000, 3)


class DeliveryTransport:
    """One shared HTTP client for all deliveries of a process (keep-alive across them)."""

    def __init__(
        self,
        *,
        connect_timeout: timedelta = DEFAULT_CONNECT_TIMEOUT,
        total_timeout: timedelta = DEFAULT_TOTAL_TIMEOUT,
        excerpt_bytes: int = DEFAULT_EXCERPT_BYTES,
        verify: bool = True,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.total_timeout = total_timeout
        self.excerpt_bytes = excerpt_bytes
        total = total_timeout.total_seconds()
        self._client = httpx.AsyncClient(
            transport=PinnedTransport(verify=verify),
            timeout=httpx.Timeout(total, connect=connect_timeout.total_seconds()),
            follow_redirects=False,
            trust_env=False,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def post(
        self, destination: Destination, body: bytes, headers: Mapping[str, str]
    ) -> HTTPResult:
        """POST ``body`` to the destination's checked addresses. Never raises for network
        trouble: timeouts and connection errors come back as an ``HTTPResult``."""
        host = _host_key(destination.target.host)
        token = _pins.set({host: tuple(str(a) for a in destination.addresses)})
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.total_timeout.total_seconds()):
                return await self._exchange(destination.target.url, body, headers, started)
        except (TimeoutError, httpx.TimeoutException) as exc:
            return self._failed(started, "timeout", str(exc) or "timed out")
        except httpx.TransportError as exc:
            return self._failed(started, "connection", str(exc) or type(exc).__name__)
        finally:
            _pins.reset(token)

    async def _exchange(
        self, url: str, body: bytes, headers: Mapping[str, str], started: float
    ) -> HTTPResult:
        request = self._client.build_request(
            "POST",
            url,
            content=body,
            headers={
                "content-type": "application/json",
                "user-agent": USER_AGENT,
                "accept-encoding": "identity",
                **headers,
            },
        )
        response = await self._client.send(request, stream=True, follow_redirects=False)
        try:
            excerpt = bytearray()
            async for chunk in response.aiter_raw():
                excerpt += chunk
                if len(excerpt) >= self.excerpt_bytes:
                    break
        finally:
            await response.aclose()
        return HTTPResult(
            status=response.status_code,
            latency=timedelta(seconds=time.perf_counter() - started),
            excerpt=bytes(excerpt[: self.excerpt_bytes]).decode("utf-8", errors="replace"),
            retry_after=response.headers.get("retry-after"),
        )

    @staticmethod
    def _failed(started: float, error: str, detail: str) -> HTTPResult:
        return HTTPResult(
            status=None,
            latency=timedelta(seconds=time.perf_counter() - started),
            error=error,
            detail=detail[:500],
        )
