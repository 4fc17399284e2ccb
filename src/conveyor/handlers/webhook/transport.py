"""The HTTP side of a webhook attempt: POST to an address that was checked, never another.

Called by the webhook handler with a ``Destination`` from ``ssrf.check_destination``.

* **Pinned connections.** The aiohttp client (``conveyor.handlers.webhook.aio``) is given
  the checked addresses and connects only to them: its resolver answers with exactly those
  and its DNS cache is off, so no code path can look the host up a second time. The URL
  keeps its host name, so the ``Host`` header, TLS SNI and certificate verification are all
  against the name. A pooled keep-alive connection is reused only when this delivery's check
  produced the same scheme/host/port *and* the same set of addresses.
* **No redirects**: a 3xx is returned as it is; the handler records it as a failure.
* **Bounded.** A connect timeout and a total timeout per attempt; the response body is read
  as it is (no decompression) up to ``excerpt_bytes`` and the rest is dropped (the
  connection is then closed, not reused).
* No proxies: a proxy would resolve the name itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from conveyor.handlers.webhook.aio import AioPool, ProtocolError
from conveyor.handlers.webhook.ssrf import Destination

DEFAULT_CONNECT_TIMEOUT = timedelta(seconds=5)
DEFAULT_TOTAL_TIMEOUT = timedelta(seconds=30)
DEFAULT_EXCERPT_BYTES = 4096
USER_AGENT = "Conveyor-Webhooks/0.1"


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
    """The keep-alive connections of one event loop, shared by all its deliveries."""

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
        self._pool = AioPool(verify=verify)

    async def aclose(self) -> None:
        await self._pool.aclose()

    async def post(
        self, destination: Destination, body: bytes, headers: Mapping[str, str]
    ) -> HTTPResult:
        """POST ``body`` to the destination's checked addresses. Never raises for network
        trouble: timeouts and connection errors come back as an ``HTTPResult``."""
        addresses = [str(a) for a in destination.addresses]
        all_headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "accept-encoding": "identity",
            **headers,
        }
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.total_timeout.total_seconds()):
                answer = await self._pool.post(
                    destination.target.url,
                    addresses,
                    body,
                    all_headers,
                    limit=self.excerpt_bytes,
                    connect_timeout=self.connect_timeout.total_seconds(),
                )
        except TimeoutError as exc:
            return self._failed(started, "timeout", str(exc) or "timed out")
        except (OSError, ProtocolError) as exc:
            return self._failed(started, "connection", str(exc) or type(exc).__name__)
        return HTTPResult(
            status=answer.status,
            latency=timedelta(seconds=time.perf_counter() - started),
            excerpt=answer.body[: self.excerpt_bytes].decode("utf-8", errors="replace"),
            retry_after=answer.headers.get("retry-after"),
        )

    @staticmethod
    def _failed(started: float, error: str, detail: str) -> HTTPResult:
        return HTTPResult(
            status=None,
            latency=timedelta(seconds=time.perf_counter() - started),
            error=error,
            detail=detail[:500],
        )
