"""Settings read from the environment (``CONVEYOR_*``) and flags: read at the edges only (the
CLI, ``conveyor up``, the API factory), then passed down as plain values.

Deliberately plain Python rather than pydantic-settings: the worker reads these too, and
loading pydantic there costs about 10 MiB of RSS per worker process for a dozen fields.
A bad value is a ``ConfigurationError`` naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import timedelta

from conveyor.errors import ConfigurationError

DEFAULT_DATABASE_URL = "sqlite:///conveyor.db"
PREFIX = "CONVEYOR_"
LOG_FORMATS = ("auto", "json", "console")


def _optional_float(raw: str) -> float | None:
    return None if raw.strip().lower() in ("", "none", "null", "off") else float(raw)


def _optional_str(raw: str) -> str | None:
    return raw or None


@dataclass(frozen=True, slots=True)
class _Rule:
    parse: Callable[[str], object]
    minimum: float | None = None
    exclusive: bool = False  # minimum excluded
    choices: tuple[str, ...] = ()


RULES: dict[str, _Rule] = {
    "database_url": _Rule(_optional_str),
    "url": _Rule(str),
    "token": _Rule(_optional_str),
    "host": _Rule(str),
    "port": _Rule(int, minimum=0),
    "max_body_bytes": _Rule(int, minimum=1024),
    "max_payload_bytes": _Rule(int, minimum=256),
    "lease_seconds": _Rule(float, minimum=0, exclusive=True),
    "grace_seconds": _Rule(float, minimum=0),
    "max_rescues": _Rule(int, minimum=0),
    "retain_completed_seconds": _Rule(_optional_float, minimum=0),
    "retain_failed_seconds": _Rule(_optional_float, minimum=0),
    "retain_cancelled_seconds": _Rule(_optional_float, minimum=0),
    "log_format": _Rule(str.lower, choices=LOG_FORMATS),
    "log_level": _Rule(str.lower),
}


@dataclass(frozen=True, slots=True, init=False)
class Settings:
    """``Settings()`` reads ``CONVEYOR_<FIELD>`` from the environment; keyword arguments
    override it (``Settings(max_body_bytes=4096)``)."""

    database_url: str | None  # None: the app's, else DEFAULT_DATABASE_URL
    url: str  # where the CLI finds the API
    token: str | None  # the CLI's bearer token
    host: str
    port: int
    max_body_bytes: int
    max_payload_bytes: int
    lease_seconds: float
    grace_seconds: float
    max_rescues: int
    retain_completed_seconds: float | None
    retain_failed_seconds: float | None
    retain_cancelled_seconds: float | None
    log_format: str  # auto | json | console
    log_level: str

    def __init__(self, environ: Mapping[str, str] | None = None, **overrides: object) -> None:
        env = os.environ if environ is None else environ
        unknown = set(overrides) - set(RULES)
        if unknown:
            raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
        for name, rule in RULES.items():
            if name in overrides:
                value = _check(name, overrides[name], rule)
            elif (raw := env.get(PREFIX + name.upper())) is not None:
                value = _check(name, _parse(name, raw, rule), rule)
            else:
                value = DEFAULTS[name]
            object.__setattr__(self, name, value)

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.lease_seconds)

    @property
    def grace(self) -> timedelta:
        return timedelta(seconds=self.grace_seconds)

    def as_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


DEFAULTS: dict[str, object] = {
    "database_url": None,
    "url": "http://127.0.0.1:8080",
    "token": None,
    "host": "127.0.0.1",
    "port": 8080,
    "max_body_bytes": 1024 * 1024,
    "max_payload_bytes": 512 * 1024,
    "lease_seconds": 30.0,
    "grace_seconds": 30.0,
    "max_rescues": 3,
    "retain_completed_seconds": 24 * 3600.0,
    "retain_failed_seconds": 30 * 24 * 3600.0,
    "retain_cancelled_seconds": 7 * 24 * 3600.0,
    "log_format": "auto",
    "log_level": "info",
}


def _parse(name: str, raw: str, rule: _Rule) -> object:
    try:
        return rule.parse(raw.strip())
    except ValueError:
        raise ConfigurationError(
            f"{PREFIX}{name.upper()}={raw!r} is not a valid {rule.parse.__name__.strip('_')}"
        ) from None


def _check(name: str, value: object, rule: _Rule) -> object:
    variable = PREFIX + name.upper()
    if rule.choices and value not in rule.choices:
        raise ConfigurationError(f"{variable} must be one of {', '.join(rule.choices)}")
    if rule.minimum is not None and isinstance(value, int | float) and not isinstance(value, bool):
        too_small = value <= rule.minimum if rule.exclusive else value < rule.minimum
        if too_small:
            relation = "above" if rule.exclusive else "at least"
            raise ConfigurationError(f"{variable} must be {relation} {rule.minimum:g}")
    return value


def resolve_database_url(flag: str | None, app_url: str | None = None) -> str:
    """The flag, else ``CONVEYOR_DATABASE_URL``, else the app's, else the SQLite default."""
    return flag or Settings().database_url or app_url or DEFAULT_DATABASE_URL
