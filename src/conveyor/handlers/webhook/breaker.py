"""Circuit breakers per webhook destination (``host:port``), shared by every worker process.

Called by the webhook handler around each attempt (``admit`` before, ``report`` after) and by
the API (``snapshots`` for ``GET /webhooks/breakers``).

The state machine is pure (``BreakerSnapshot`` + ``admit`` / ``record_outcomes`` /
``record_probe``, unit-tested with a ``FrozenClock``)::

    closed ──(>= min_requests in the window and failure rate >= threshold)──▶ open
    open ──(open_for has passed: lazily, on the next read)──▶ half-open
    half-open: the first delivery claims the single probe (a CAS write); the others wait
        probe succeeds ──▶ closed (window cleared)
        probe fails    ──▶ open again, for twice as long (up to max_open_for)
        probe never reports (its worker died) ──▶ after probe_timeout another probe may go

Deliveries refused by an open breaker are deferred to when it half-opens, without spending
an attempt (the handler raises ``Retry(after=..., charge=False)``).

Sharing: the snapshot lives in the backend's ``RecordStore`` (namespace
``webhook_breakers``), written only by compare-and-set. To keep the hot path cheap, each
process counts outcomes locally and flushes them every ``flush_interval`` (default 1 s), and
reads state through a cache of ``cache_ttl`` (default 1 s). The price is lag: a breaker opens
up to about ``flush_interval + cache_ttl`` after the failure that tipped it, so a few more
requests than ``min_requests`` may reach a failing host; probe outcomes are written at once.
Time is the process clock (``SystemClock``), so hosts should keep NTP time: skew of a second
only shifts when a breaker half-opens.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from conveyor.backend import Record, RecordStore
from conveyor.clock import Clock, SystemClock
from conveyor.errors import BackendError, RecordConflict
from conveyor.jobs import JSONObject, JSONValue

log = logging.getLogger("conveyor.webhooks")

NAMESPACE = "webhook_breakers"
CAS_ATTEMPTS = 20


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


STATE_VALUES = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    window: timedelta = timedelta(seconds=60)
    bucket: timedelta = timedelta(seconds=5)
    min_requests: int = 10
    failure_rate: float = 0.5
    open_for: timedelta = timedelta(seconds=30)
    max_open_for: timedelta = timedelta(minutes=10)
    probe_timeout: timedelta = timedelta(seconds=60)
    flush_interval: timedelta = timedelta(seconds=1)  # 0: write every outcome at once
    cache_ttl: timedelta = timedelta(seconds=1)  # 0: read the store every time

    def __post_init__(self) -> None:
        if not 0.0 < self.failure_rate <= 1.0 or self.min_requests < 1:
            raise ValueError("need 0 < failure_rate <= 1 and min_requests >= 1")
        if self.bucket <= timedelta(0) or self.window < self.bucket:
            raise ValueError("need 0 < bucket <= window")


@dataclass(frozen=True, slots=True)
class Admission:
    """May this delivery go now? ``probe``: it is the half-open probe, report it as such.
    ``retry_after``: when refused, how long to defer."""

    allowed: bool
    state: BreakerState
    probe: bool = False
    retry_after: timedelta | None = None


Bucket = tuple[int, int, int]  # (bucket start, epoch seconds; successes; failures)


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    host: str
    state: BreakerState = BreakerState.CLOSED
    buckets: tuple[Bucket, ...] = ()
    opened_at: datetime | None = None
    reopens: int = 0  # failed probes in a row: each doubles the open period
    probe_started_at: datetime | None = None
    updated_at: datetime | None = field(default=None, compare=False)

    def open_period(self, config: BreakerConfig) -> timedelta:
        factor: int = 2 ** min(self.reopens, 30)
        period: timedelta = config.open_for * factor
        return min(period, max(config.max_open_for, config.open_for))

    def half_opens_at(self, config: BreakerConfig) -> datetime | None:
        if self.opened_at is None:
            return None
        return self.opened_at + self.open_period(config)

    def phase(self, now: datetime, config: BreakerConfig) -> BreakerState:
        """The state as of ``now`` (open turns half-open lazily, when read)."""
        due = self.half_opens_at(config)
        if self.state is BreakerState.OPEN and due is not None and now >= due:
            return BreakerState.HALF_OPEN
        return self.state

    def totals(self, now: datetime, config: BreakerConfig) -> tuple[int, int]:
        live = _prune(self.buckets, now, config)
        return sum(b[1] for b in live), sum(b[2] for b in live)

    def to_json(self) -> JSONObject:
        return {
            "host": self.host,
            "state": self.state.value,
            "buckets": [list(b) for b in self.buckets],
            "opened_at": _iso(self.opened_at),
            "reopens": self.reopens,
            "probe_started_at": _iso(self.probe_started_at),
        }

    @classmethod
    def from_record(cls, record: Record) -> BreakerSnapshot:
        value = record.value
        raw_buckets = value.get("buckets")
        buckets: list[Bucket] = []
        if isinstance(raw_buckets, list):
            for b in raw_buckets:
                if isinstance(b, list) and len(b) == 3 and all(isinstance(n, int) for n in b):
                    buckets.append((int(b[0]), int(b[1]), int(b[2])))  # type: ignore[arg-type]
        reopens = value.get("reopens")
        return cls(
            host=record.key,
            state=BreakerState(str(value.get("state", BreakerState.CLOSED.value))),
            buckets=tuple(buckets),
            opened_at=_parse(value.get("opened_at")),
            reopens=reopens if isinstance(reopens, int) else 0,
            probe_started_at=_parse(value.get("probe_started_at")),
            updated_at=record.updated_at,
        )


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def _parse(raw: JSONValue) -> datetime | None:
    if not isinstance(raw, str):
        return None
    parsed = datetime.fromisoformat(raw)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _prune(buckets: tuple[Bucket, ...], now: datetime, config: BreakerConfig) -> tuple[Bucket, ...]:
    horizon = int(now.timestamp() - config.window.total_seconds())
    return tuple(b for b in buckets if b[0] + int(config.bucket.total_seconds()) > horizon)


def _opened(snap: BreakerSnapshot, now: datetime, reopens: int) -> BreakerSnapshot:
    return replace(
        snap,
        state=BreakerState.OPEN,
        buckets=(),
        opened_at=now,
        reopens=reopens,
        probe_started_at=None,
    )


def record_outcomes(
    snap: BreakerSnapshot, successes: int, failures: int, now: datetime, config: BreakerConfig
) -> BreakerSnapshot:
    """Add ordinary (non-probe) outcomes. Only a closed breaker counts them: outcomes of
    requests that were in flight when it opened say nothing new."""
    if snap.phase(now, config) is not BreakerState.CLOSED or successes + failures == 0:
        return snap
    step = int(config.bucket.total_seconds())
    start = int(now.timestamp()) // step * step
    buckets = list(_prune(snap.buckets, now, config))
    if buckets and buckets[-1][0] == start:
        _, s, f = buckets[-1]
        buckets[-1] = (start, s + successes, f + failures)
    else:
        buckets.append((start, successes, failures))
    updated = replace(snap, buckets=tuple(buckets))
    ok, bad = updated.totals(now, config)
    if ok + bad >= config.min_requests and bad / (ok + bad) >= config.failure_rate:
        return _opened(updated, now, reopens=0)
    return updated


def record_probe(
    snap: BreakerSnapshot, ok: bool, now: datetime, config: BreakerConfig
) -> BreakerSnapshot:
    """The half-open probe's outcome: close on success, open again (longer) on failure."""
    if snap.phase(now, config) is not BreakerState.HALF_OPEN:
        return snap
    if ok:
        return BreakerSnapshot(host=snap.host)
    return _opened(snap, now, reopens=snap.reopens + 1)


def admit(
    snap: BreakerSnapshot, now: datetime, config: BreakerConfig
) -> tuple[Admission, BreakerSnapshot | None]:
    """Decide for one delivery. The second value, when not None, is the snapshot to write
    (by CAS) to claim the half-open probe; the admission holds only if that write wins."""
    phase = snap.phase(now, config)
    if phase is BreakerState.CLOSED:
        return Admission(allowed=True, state=phase), None
    if phase is BreakerState.OPEN:
        due = snap.half_opens_at(config) or now
        return Admission(False, phase, retry_after=max(due - now, timedelta(0))), None
    probe_at = snap.probe_started_at
    if probe_at is not None and now < probe_at + config.probe_timeout:
        wait = min(probe_at + config.probe_timeout - now, config.open_for)
        return Admission(False, phase, retry_after=wait), None
    claimed = replace(snap, state=BreakerState.HALF_OPEN, probe_started_at=now)
    return Admission(allowed=True, state=phase, probe=True), claimed


StateListener = Callable[[str, BreakerState], None]


@dataclass(slots=True)
class _Cached:
    snap: BreakerSnapshot
    version: int
    read_at: datetime


class CircuitBreakers:
    """All breakers, as seen by one process. Share one instance per process."""

    def __init__(
        self,
        records: RecordStore,
        config: BreakerConfig | None = None,
        clock: Clock | None = None,
        on_state: StateListener | None = None,
    ) -> None:
        self.config = config or BreakerConfig()
        self._records = records
        self._clock: Clock = clock or SystemClock()
        self._on_state = on_state
        self._cache: dict[str, _Cached] = {}
        self._pending: dict[str, tuple[int, int]] = {}
        self._timer: asyncio.Task[None] | None = None

    async def admit(self, host: str) -> Admission:
        fresh = False
        for _ in range(CAS_ATTEMPTS):
            cached = await self._read(host, fresh=fresh)
            now = self._clock.now()
            admission, claim = admit(cached.snap, now, self.config)
            if claim is None:
                return admission
            try:
                await self._write(host, claim, cached.version)
            except RecordConflict:
                fresh = True  # someone else moved it: look again
                continue
            return admission
        return Admission(False, BreakerState.HALF_OPEN, retry_after=self.config.open_for)

    async def report(self, host: str, ok: bool, *, probe: bool = False) -> None:
        """Record one outcome. Probe outcomes are written at once; others are batched."""
        if probe:
            now = self._clock.now()
            await self._update(host, lambda s: record_probe(s, ok, now, self.config))
            return
        s, f = self._pending.get(host, (0, 0))
        self._pending[host] = (s + int(ok), f + int(not ok))
        if self.config.flush_interval <= timedelta(0):
            await self.flush()
        elif self._timer is None or self._timer.done():
            self._timer = asyncio.create_task(self._flush_later())

    async def flush(self) -> None:
        """Write every locally counted outcome to the shared snapshots."""
        pending, self._pending = self._pending, {}
        now = self._clock.now()
        for host, (s, f) in pending.items():
            try:
                await self._update(host, self._adder(s, f, now))
            except BackendError:
                log.warning("could not flush breaker counts for %s; keeping them", host)
                old_s, old_f = self._pending.get(host, (0, 0))
                self._pending[host] = (old_s + s, old_f + f)

    def _adder(
        self, successes: int, failures: int, now: datetime
    ) -> Callable[[BreakerSnapshot], BreakerSnapshot]:
        def add(snap: BreakerSnapshot) -> BreakerSnapshot:
            return record_outcomes(snap, successes, failures, now, self.config)

        return add

    async def aclose(self) -> None:
        if self._timer is not None and not self._timer.done():
            self._timer.cancel()
        await self.flush()

    async def snapshots(self) -> list[BreakerSnapshot]:
        """Every breaker's shared state (with its phase as of now in ``state``)."""
        now = self._clock.now()
        result = []
        for record in await self._records.list_records(NAMESPACE):
            snap = BreakerSnapshot.from_record(record)
            result.append(replace(snap, state=snap.phase(now, self.config)))
        return result

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.config.flush_interval.total_seconds())
        await self.flush()

    async def _read(self, host: str, *, fresh: bool = False) -> _Cached:
        now = self._clock.now()
        cached = self._cache.get(host)
        if not fresh and cached is not None and now - cached.read_at < self.config.cache_ttl:
            return cached
        record = await self._records.get_record(NAMESPACE, host)
        if record is None:
            cached = _Cached(BreakerSnapshot(host=host), 0, now)
        else:
            cached = _Cached(BreakerSnapshot.from_record(record), record.version, now)
        self._remember(host, cached)
        return cached

    async def _write(self, host: str, snap: BreakerSnapshot, version: int) -> None:
        record = await self._records.put_record(NAMESPACE, host, snap.to_json(), version)
        self._remember(host, _Cached(snap, record.version, self._clock.now()))

    async def _update(
        self, host: str, change: Callable[[BreakerSnapshot], BreakerSnapshot]
    ) -> None:
        fresh = True
        for _ in range(CAS_ATTEMPTS):
            cached = await self._read(host, fresh=fresh)
            updated = change(cached.snap)
            if updated == cached.snap:
                return
            try:
                await self._write(host, updated, cached.version)
                return
            except RecordConflict:
                continue
        raise RecordConflict(NAMESPACE, host)

    def _remember(self, host: str, cached: _Cached) -> None:
        previous = self._cache.get(host)
        self._cache[host] = cached
        state = cached.snap.phase(cached.read_at, self.config)
        if self._on_state is not None and (
            previous is None or previous.snap.phase(previous.read_at, self.config) is not state
        ):
            self._on_state(host, state)
