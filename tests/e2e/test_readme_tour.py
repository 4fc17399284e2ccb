"""The README's tour, run as written against a real ``conveyor up`` process.

Every ```bash block between ``<!-- tour:start -->`` and ``<!-- tour:end -->`` in README.md runs
as one ``bash -e -o pipefail`` script (shell variables live within a block) from the
repository root, and must exit 0. The test starts the server itself, so ``make run`` and
``conveyor up`` lines are skipped; it listens on a free port, so ``127.0.0.1:8080`` in the
commands is replaced by the real address (``CONVEYOR_URL`` points the CLI there too). The
database is a fresh SQLite file (``CONVEYOR_DATABASE_URL``), shared by the server and the
commands (``conveyor token create`` writes to it directly).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.services import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
README = Path(os.environ.get("CONVEYOR_TOUR_FILE", ROOT / "README.md"))
TOUR = re.compile(r"<!-- tour:start -->(.*?)<!-- tour:end -->", re.S)
BASH_BLOCK = re.compile(r"```bash\n(.*?)```", re.S)
SERVER_LINES = re.compile(r"^\s*(make run|conveyor up)\b")


def tour_blocks() -> list[str]:
    text = README.read_text()
    match = TOUR.search(text)
    if match is None:
        pytest.fail(f"{README} has no <!-- tour:start --> ... <!-- tour:end --> section")
    blocks = []
    for block in BASH_BLOCK.findall(match.group(1)):
        lines = [line for line in block.splitlines() if not SERVER_LINES.match(line)]
        if any(line.strip() and not line.strip().startswith("#") for line in lines):
            blocks.append("\n".join(lines))
    assert blocks, "the tour has no commands"
    return blocks


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "CONVEYOR_DATABASE_URL": f"sqlite:///{tmp_path / 'tour.db'}",
        "CONVEYOR_URL": url,
        "CONVEYOR_GRACE_SECONDS": "5",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("CONVEYOR_TOKEN", None)
    log = (tmp_path / "up.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "conveyor",
            "up",
            "--app",
            "examples.tasks:app",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (tmp_path / "up.log").read_text()
            try:
                if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "conveyor up did not become ready"
            time.sleep(0.1)
        yield url, env
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        log.close()
    assert code == 0, (tmp_path / "up.log").read_text()
    assert "Conveyor is up" in (tmp_path / "up.log").read_text()


def test_readme_tour(server: tuple[str, dict[str, str]]) -> None:
    url, env = server
    address = url.removeprefix("http://")
    for number, block in enumerate(tour_blocks(), 1):
        script = block.replace("127.0.0.1:8080", address)
        began = time.monotonic()
        result = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, (
            f"tour block {number} failed (exit {result.returncode}):\n{block}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
        print(f"tour block {number}: {time.monotonic() - began:.1f}s")
