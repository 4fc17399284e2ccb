"""Settings read from the environment (``CONVEYOR_*``) and flags: read at the edges only (the
CLI, ``conveyor up``, the API factory), then passed down as plain values.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///conveyor.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONVEYOR_", extra="ignore")

    database_url: str | None = None  # None: the app's, else DEFAULT_DATABASE_URL
    url: str = "http://127.0.0.1:8080"  # where the CLI finds the API
    token: str | None = None  # the CLI's bearer token
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_payload_bytes: int = Field(default=512 * 1024, ge=256)
    lease_seconds: float = Field(default=30.0, gt=0)
    grace_seconds: float = Field(default=30.0, ge=0)
    max_rescues: int = Field(default=3, ge=0)
    retain_completed_seconds: float | None = 24 * 3600.0
    retain_failed_seconds: float | None = 30 * 24 * 3600.0
    retain_cancelled_seconds: float | None = 7 * 24 * 3600.0
    log_format: str = "auto"  # auto | json | console
    log_level: str = "info"

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.lease_seconds)

    @property
    def grace(self) -> timedelta:
        return timedelta(seconds=self.grace_seconds)


def resolve_database_url(flag: str | None, app_url: str | None = None) -> str:
    """The flag, else ``CONVEYOR_DATABASE_URL``, else the app's, else the SQLite default."""
    return flag or Settings().database_url or app_url or DEFAULT_DATABASE_URL
