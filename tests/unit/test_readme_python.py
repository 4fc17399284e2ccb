"""The README's Python examples, run as written: the task definition must match
``examples/tasks.py`` and the handler test built on ``conveyor.testing`` must pass."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def blocks() -> list[str]:
    return PYTHON_BLOCK.findall((ROOT / "README.md").read_text())


def test_task_definition_is_the_example_module() -> None:
    [definition] = [b for b in blocks() if "@app.task" in b]
    source = (ROOT / "examples" / "tasks.py").read_text()
    assert '@app.task(queue="emails", max_attempts=8, timeout=timedelta(seconds=30))' in definition
    assert '@app.task(queue="emails", max_attempts=8, timeout=timedelta(seconds=30))' in source
    namespace: dict[str, object] = {}
    exec(compile(definition.replace("    ...\n", ""), "README.md", "exec"), namespace)
    assert "send_email" in namespace


async def test_handler_test_example_passes() -> None:
    [example] = [b for b in blocks() if "run_worker" in b]
    namespace: dict[str, object] = {}
    exec(compile(example, "README.md", "exec"), namespace)
    test = namespace["test_send_email"]
    await test()  # type: ignore[operator]
