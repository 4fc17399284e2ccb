"""Bearer tokens with scopes (``jobs:read``, ``jobs:write``, ``admin``), stored hashed.

A token is ``cvk_`` + 32 random bytes in hex; only its SHA-256 is stored (``TokenStore``). A
request's token is hashed, looked up by hash, and the stored hash is compared with
``hmac.compare_digest``. ``admin`` implies every scope; ``jobs:write`` implies ``jobs:read``.

When is a token required? ``tokens_required=True``: always. ``False``: never (a loopback-only
development server); a token that *is* presented is still checked. ``None`` (the default for
``conveyor up``/``conveyor api``): required as soon as at least one live token exists in the
store. Lookups are cached for a few seconds, so a revoked token stops working within
``cache_ttl``.

Open routes: ``/health``, ``/ready`` and ``/metrics``. ``/metrics`` carries counts only (no
payloads, no ids), and Prometheus scrapers are usually configured without credentials; put it
behind the network, not a token.

Who calls it: the routers (``Depends(require(Scope.JOBS_READ))``), ``conveyor token`` (the
helpers ``new_secret``/``hash_secret``), and ``conveyor api`` at startup (``live_tokens``).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from enum import StrEnum

from fastapi import Request

from conveyor.backend import TokenRecord, TokenStore
from conveyor.errors import Forbidden, Unauthenticated
from conveyor.ids import new_token

TOKEN_PREFIX = "cvk_"


class Scope(StrEnum):
    JOBS_READ = "jobs:read"
    JOBS_WRITE = "jobs:write"
    ADMIN = "admin"


IMPLIED: dict[Scope, frozenset[Scope]] = {
    Scope.ADMIN: frozenset(Scope),
    Scope.JOBS_WRITE: frozenset({Scope.JOBS_WRITE, Scope.JOBS_READ}),
    Scope.JOBS_READ: frozenset({Scope.JOBS_READ}),
}


def new_secret() -> str:
    return TOKEN_PREFIX + new_token(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_record(name: str, scopes: list[str]) -> tuple[str, TokenRecord]:
    """A fresh secret and the record to store for it (the secret itself is never stored)."""
    for scope in scopes:
        Scope(scope)  # ValueError names the bad scope
    secret = new_secret()
    record = TokenRecord(
        id=new_token(6),
        name=name,
        scopes=tuple(sorted(set(scopes))),
        secret_hash=hash_secret(secret),
        created_at=datetime.now(UTC),
    )
    return secret, record


def granted(scopes: tuple[str, ...]) -> frozenset[Scope]:
    out: set[Scope] = set()
    for raw in scopes:
        try:
            out |= IMPLIED[Scope(raw)]
        except ValueError:
            continue  # a scope this version does not know grants nothing
    return frozenset(out)


async def live_tokens(store: TokenStore) -> int:
    return sum(1 for t in await store.list_tokens() if t.revoked_at is None)


class Authenticator:
    """Checks bearer tokens against a ``TokenStore`` with a short cache."""

    def __init__(
        self, store: TokenStore, *, tokens_required: bool | None, cache_ttl: float = 2.0
    ) -> None:
        self.store = store
        self.tokens_required = tokens_required
        self.cache_ttl = cache_ttl
        self._cache: dict[str, tuple[float, TokenRecord | None]] = {}
        self._required: tuple[float, bool] = (float("-inf"), False)

    async def required(self) -> bool:
        if self.tokens_required is not None:
            return self.tokens_required
        at, value = self._required
        now = time.monotonic()
        if now - at > self.cache_ttl:
            value = await live_tokens(self.store) > 0
            self._required = (now, value)
        return value

    async def lookup(self, secret: str) -> TokenRecord | None:
        digest = hash_secret(secret)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and now - hit[0] <= self.cache_ttl:
            record = hit[1]
        else:
            record = await self.store.find_token(digest)
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now, record)
        if record is None or not hmac.compare_digest(record.secret_hash, digest):
            return None
        if record.revoked_at is not None:
            return None
        return record

    async def check(self, request: Request, scope: Scope) -> TokenRecord | None:
        header = request.headers.get("authorization")
        if header is None:
            if await self.required():
                raise Unauthenticated("a bearer token is required (Authorization: Bearer ...)")
            return None
        kind, _, secret = header.partition(" ")
        if kind.lower() != "bearer" or not secret.strip():
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        record = await self.lookup(secret.strip())
        if record is None:
            raise Unauthenticated("unknown or revoked token")
        if scope not in granted(record.scopes):
            raise Forbidden(scope.value)
        return record


def require(scope: Scope) -> Callable[[Request], Awaitable[None]]:
    """A FastAPI dependency: the request's token must grant ``scope``."""

    async def dependency(request: Request) -> None:
        auth: Authenticator = request.app.state.auth
        await auth.check(request, scope)

    dependency.__name__ = f"require_{scope.value.replace(':', '_')}"
    return dependency
