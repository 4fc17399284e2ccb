"""Settings from the environment: defaults, parsing, overrides, and one clear error per bad
value (a ConfigurationError naming the variable)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from conveyor.errors import ConfigurationError
from conveyor.settings import DEFAULT_DATABASE_URL, Settings, resolve_database_url


def test_defaults() -> None:
    settings = Settings(environ={})
    assert settings.database_url is None
    assert settings.url == "http://127.0.0.1:8080"
    assert settings.lease == timedelta(seconds=30) and settings.grace == timedelta(seconds=30)
    assert settings.max_body_bytes == 1024 * 1024 and settings.max_rescues == 3
    assert settings.retain_completed_seconds == 86400.0 and settings.log_format == "auto"


def test_environment_is_parsed() -> None:
    settings = Settings(
        environ={
            "CONVEYOR_DATABASE_URL": "postgresql://db/x",
            "CONVEYOR_LEASE_SECONDS": "2.5",
            "CONVEYOR_PORT": "9000",
            "CONVEYOR_RETAIN_FAILED_SECONDS": "none",
            "CONVEYOR_LOG_FORMAT": "JSON",
            "CONVEYOR_TOKEN": "",
        }
    )
    assert settings.database_url == "postgresql://db/x"
    assert settings.lease == timedelta(seconds=2.5) and settings.port == 9000
    assert settings.retain_failed_seconds is None and settings.log_format == "json"
    assert settings.token is None


def test_overrides_win_over_the_environment() -> None:
    settings = Settings(environ={"CONVEYOR_MAX_BODY_BYTES": "2048"}, max_body_bytes=4096)
    assert settings.max_body_bytes == 4096
    with pytest.raises(TypeError, match="unknown settings: nope"):
        Settings(environ={}, nope=1)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("CONVEYOR_PORT", "eighty", "CONVEYOR_PORT='eighty' is not a valid int"),
        ("CONVEYOR_LEASE_SECONDS", "0", "CONVEYOR_LEASE_SECONDS must be above 0"),
        ("CONVEYOR_MAX_BODY_BYTES", "10", "CONVEYOR_MAX_BODY_BYTES must be at least 1024"),
        ("CONVEYOR_LOG_FORMAT", "xml", "CONVEYOR_LOG_FORMAT must be one of auto, json, console"),
        ("CONVEYOR_GRACE_SECONDS", "-1", "CONVEYOR_GRACE_SECONDS must be at least 0"),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings(environ={variable: value})


def test_database_url_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONVEYOR_DATABASE_URL", raising=False)
    assert resolve_database_url(None) == DEFAULT_DATABASE_URL
    assert resolve_database_url(None, "redis://app") == "redis://app"
    monkeypatch.setenv("CONVEYOR_DATABASE_URL", "postgresql://env")
    assert resolve_database_url(None, "redis://app") == "postgresql://env"
    assert resolve_database_url("sqlite:///flag.db", "redis://app") == "sqlite:///flag.db"
