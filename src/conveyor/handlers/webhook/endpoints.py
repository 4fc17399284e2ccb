"""Named webhook endpoints: where deliveries go, and the secrets they are signed with.

Called by the API (``/webhooks/endpoints``: create, list, show, update, rotate, delete), by
the webhook handler (to look an endpoint up, and to disable it on HTTP 410) and by tests.
Endpoints are stored in the backend's ``RecordStore`` (namespace ``webhook_endpoints``), so
every API and worker process sees the same ones; every change is a compare-and-set.

Secrets: stored (the worker needs them to sign), but never logged (``repr`` hides them),
never put in job payloads (a delivery names its endpoint), and returned by this module only
from ``create`` and ``rotate``, once. ``public_json`` is what the API shows afterwards.
Rotation keeps the previous secret valid for an overlap (default 24 h), during which
deliveries are signed with both.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from conveyor.backend import Record, RecordStore
from conveyor.clock import Clock, SystemClock
from conveyor.errors import RecordConflict
from conveyor.handlers.webhook.signing import decode_secret, generate_secret
from conveyor.handlers.webhook.ssrf import parse_target
from conveyor.jobs import JSONObject, JSONValue

NAMESPACE = "webhook_endpoints"
DEFAULT_ROTATION_OVERLAP = timedelta(hours=24)
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
CAS_ATTEMPTS = 20


class EndpointError(ValueError):
    """A request about an endpoint is invalid (bad name, URL, secret or rate limit)."""


class EndpointNotFound(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no webhook endpoint named {name!r}")
        self.name = name


class EndpointExists(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"a webhook endpoint named {name!r} already exists")
        self.name = name


@dataclass(frozen=True, slots=True)
class SigningSecret:
    secret: str = field(repr=False)
    created_at: datetime
    expires_at: datetime | None = None  # set on the old secret by a rotation

    def active(self, now: datetime) -> bool:
        return self.expires_at is None or now < self.expires_at


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    url: str
    secrets: tuple[SigningSecret, ...] = field(repr=False)  # newest first
    created_at: datetime
    updated_at: datetime
    rate_limit: float | None = None  # deliveries per second, per worker process
    disabled: bool = False
    disabled_reason: str | None = None
    version: int = field(default=0, compare=False)

    def active_secrets(self, now: datetime) -> list[str]:
        return [s.secret for s in self.secrets if s.active(now)]

    def public_json(self, now: datetime) -> JSONObject:
        """Everything but the secrets."""
        rotating = [s.expires_at for s in self.secrets if s.expires_at and s.active(now)]
        return {
            "name": self.name,
            "url": self.url,
            "rate_limit": self.rate_limit,
            "disabled": self.disabled,
            "disabled_reason": self.disabled_reason,
            "active_secrets": len(self.active_secrets(now)),
            "previous_secret_expires_at": max(rotating).isoformat() if rotating else None,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }

    def to_json(self) -> JSONObject:
        secrets_: list[JSONValue] = [
            {
                "secret": s.secret,
                "created_at": s.created_at.isoformat(),
                "expires_at": None if s.expires_at is None else s.expires_at.isoformat(),
            }
            for s in self.secrets
        ]
        return {
            "name": self.name,
            "url": self.url,
            "secrets": secrets_,
            "rate_limit": self.rate_limit,
            "disabled": self.disabled,
            "disabled_reason": self.disabled_reason,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }

    @classmethod
    def from_record(cls, record: Record) -> Endpoint:
        v = record.value
        secrets_: list[SigningSecret] = []
        raw_secrets = v.get("secrets")
        for raw in raw_secrets if isinstance(raw_secrets, list) else []:
            if isinstance(raw, dict):
                expires = raw.get("expires_at")
                secrets_.append(
                    SigningSecret(
                        secret=str(raw["secret"]),
                        created_at=datetime.fromisoformat(str(raw["created_at"])),
                        expires_at=None
                        if expires is None
                        else datetime.fromisoformat(str(expires)),
                    )
                )
        rate = v.get("rate_limit")
        reason = v.get("disabled_reason")
        return cls(
            name=str(v["name"]),
            url=str(v["url"]),
            secrets=tuple(secrets_),
            created_at=datetime.fromisoformat(str(v["created_at"])),
            updated_at=datetime.fromisoformat(str(v["updated_at"])),
            rate_limit=float(rate) if isinstance(rate, int | float) else None,
            disabled=bool(v.get("disabled", False)),
            disabled_reason=None if reason is None else str(reason),
            version=record.version,
        )


def validate_url(url: str) -> str:
    """Syntax only (http/https, a host); addresses are checked at send time."""
    from conveyor.handlers.webhook.ssrf import DestinationRefused

    try:
        parse_target(url)
    except DestinationRefused as exc:
        raise EndpointError(exc.reason) from exc
    return url


def _validate(name: str | None, secret: str | None, rate_limit: float | None) -> None:
    if name is not None and not NAME_PATTERN.match(name):
        raise EndpointError(
            "an endpoint name is 1-100 letters, digits, '.', '_' or '-', starting alphanumeric"
        )
    if secret is not None:
        try:
            decode_secret(secret)
        except ValueError as exc:
            raise EndpointError(str(exc)) from None  # never chain: the message might echo it
    if rate_limit is not None and not rate_limit > 0:
        raise EndpointError("rate_limit must be a positive number of deliveries per second")


class EndpointStore:
    """CRUD and rotation of endpoints over a ``RecordStore``."""

    def __init__(self, records: RecordStore, clock: Clock | None = None) -> None:
        self._records = records
        self._clock: Clock = clock or SystemClock()

    async def create(
        self, name: str, url: str, secret: str | None = None, rate_limit: float | None = None
    ) -> tuple[Endpoint, str]:
        """Store a new endpoint; returns it and its secret (generated when not given)."""
        _validate(name, secret, rate_limit)
        validate_url(url)
        secret = secret or generate_secret()
        now = self._clock.now()
        endpoint = Endpoint(
            name=name,
            url=url,
            secrets=(SigningSecret(secret=secret, created_at=now),),
            created_at=now,
            updated_at=now,
            rate_limit=rate_limit,
        )
        try:
            record = await self._records.put_record(NAMESPACE, name, endpoint.to_json(), 0)
        except RecordConflict:
            raise EndpointExists(name) from None
        return replace(endpoint, version=record.version), secret

    async def get(self, name: str) -> Endpoint | None:
        record = await self._records.get_record(NAMESPACE, name)
        return None if record is None else Endpoint.from_record(record)

    async def require(self, name: str) -> Endpoint:
        endpoint = await self.get(name)
        if endpoint is None:
            raise EndpointNotFound(name)
        return endpoint

    async def list(self) -> list[Endpoint]:
        return [Endpoint.from_record(r) for r in await self._records.list_records(NAMESPACE)]

    async def update(
        self,
        name: str,
        *,
        url: str | None = None,
        rate_limit: float | None = None,
        clear_rate_limit: bool = False,
        disabled: bool | None = None,
        disabled_reason: str | None = None,
    ) -> Endpoint:
        _validate(None, None, rate_limit)
        if url is not None:
            validate_url(url)

        def change(e: Endpoint, now: datetime) -> Endpoint:
            new_rate = None if clear_rate_limit else (rate_limit or e.rate_limit)
            new_disabled = e.disabled if disabled is None else disabled
            reason = (disabled_reason or e.disabled_reason) if new_disabled else None
            return replace(
                e,
                url=url or e.url,
                rate_limit=new_rate,
                disabled=new_disabled,
                disabled_reason=reason,
            )

        return await self._change(name, change)

    async def disable(self, name: str, reason: str) -> Endpoint:
        return await self.update(name, disabled=True, disabled_reason=reason)

    async def rotate(
        self,
        name: str,
        overlap: timedelta = DEFAULT_ROTATION_OVERLAP,
        secret: str | None = None,
    ) -> tuple[Endpoint, str]:
        """A new secret, newest first; the previous ones stay valid for ``overlap``."""
        _validate(None, secret, None)
        if overlap < timedelta(0):
            raise EndpointError("overlap must not be negative")
        new_secret = secret or generate_secret()

        def change(e: Endpoint, now: datetime) -> Endpoint:
            until = now + overlap
            kept = [
                replace(s, expires_at=until if s.expires_at is None else min(s.expires_at, until))
                for s in e.secrets
                if s.active(now)
            ]
            fresh = SigningSecret(secret=new_secret, created_at=now)
            return replace(e, secrets=(fresh, *(s for s in kept if s.active(now))))

        return await self._change(name, change), new_secret

    async def delete(self, name: str) -> bool:
        return await self._records.delete_record(NAMESPACE, name)

    async def _change(
        self, name: str, change: Callable[[Endpoint, datetime], Endpoint]
    ) -> Endpoint:
        for _ in range(CAS_ATTEMPTS):
            current = await self.require(name)
            now = self._clock.now()
            updated = replace(change(current, now), updated_at=now)
            try:
                record = await self._records.put_record(
                    NAMESPACE, name, updated.to_json(), current.version
                )
            except RecordConflict:
                continue
            return replace(updated, version=record.version)
        raise RecordConflict(NAMESPACE, name)
