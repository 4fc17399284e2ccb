"""``conveyor api`` and ``conveyor up`` as real processes: the binding rule, a busy port, and a
server that answers and stops cleanly on SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from tests.services import free_port

pytestmark = pytest.mark.e2e


def conveyor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conveyor", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_api_refuses_a_public_address_without_tokens(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'open.db'}"
    result = conveyor("api", "--host", "0.0.0.0", "--port", str(free_port()), "--database-url", db)
    assert result.returncode == 1
    assert "refusing to listen on 0.0.0.0" in result.stderr
    assert "Traceback" not in result.stderr


def test_busy_port_is_a_one_line_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = conveyor(
            "up", "--port", str(port), "--database-url", f"sqlite:///{tmp_path / 'x.db'}"
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_api_serves_and_stops_on_sigint(tmp_path: Path) -> None:
    port = free_port()
    db = f"sqlite:///{tmp_path / 'api.db'}"
    process = subprocess.Popen(
        [sys.executable, "-m", "conveyor", "api", "--port", str(port), "--database-url", db],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        assert ready.status_code == 200
        created = httpx.post(
            f"http://127.0.0.1:{port}/jobs",
            json={"kind": "anything", "allow_unknown_kind": True},
            headers={"X-Request-ID": "req-123"},
        )
        assert created.status_code == 201 and created.headers["x-request-id"] == "req-123"
    finally:
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=30)
    assert process.returncode == 0, out
    assert '"request_id": "req-123"' in out  # the access log line carries the request id
