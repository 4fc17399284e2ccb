"""``conveyor worker`` parses its options without typer (``conveyor.worker.command``): same
options as the typer command, usage errors exit 2, and a worker process never imports typer,
click, pydantic or Rich."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer

from conveyor.cli.worker import register
from conveyor.worker.command import OPTIONS
from conveyor.worker.command import main as worker_main
from conveyor.worker.command import parser as _child_parser


def test_defaults_and_names_match_the_typer_command() -> None:
    args = _child_parser().parse_args(["--app", "m:app"])
    assert vars(args) == {
        "app_spec": "m:app",
        "queues": None,
        "concurrency": 10,
        "processes": 1,
        "grace": None,
        "database_url": None,
        "metrics_port": None,
    }
    short = _child_parser().parse_args(["-a", "m:app", "-q", "a,b", "-c", "3", "-p", "2"])
    assert (short.queues, short.concurrency, short.processes) == ("a,b", 3, 2)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--app", "m:app", "--concurrency", "0"],
        ["--app", "m:app", "--processes", "0"],
        ["--app", "m:app", "--grace", "-1"],
        ["--app", "m:app", "--metrics-port", "70000"],
        ["--app", "m:app", "--bogus"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        worker_main(argv)
    assert exc.value.code == 2
    assert "conveyor worker: error:" in capsys.readouterr().err


def test_an_unknown_app_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        worker_main(["--app", "no_such_module_here:app", "--database-url", "memory://"])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no_such_module_here" in err and "Traceback" not in err


def test_the_typer_command_declares_the_same_options() -> None:
    cli = typer.Typer()
    register(cli)
    command = typer.main.get_command(cli).commands["worker"]  # type: ignore[attr-defined]
    params = {p.name: p for p in command.params}
    assert set(params) == set(OPTIONS)
    for name, option in OPTIONS.items():
        param = params[name]
        assert tuple(param.opts) == option.flags, name
        assert param.required == (option.default is ...), name
        if option.default is not ...:
            assert param.default == option.default, name
        bounds = param if hasattr(param, "min") else getattr(param, "type", None)  # typer/click
        assert (getattr(bounds, "min", None), getattr(bounds, "max", None)) == (
            option.min,
            option.max,
        ), name
        assert param.help == option.help, name


def _modules_loaded(run: str, modules: tuple[str, ...]) -> tuple[list[str], str]:
    """Run ``run`` (a worker start-up that fails on an unknown app) in a fresh interpreter;
    which of ``modules`` it loaded, and its stderr."""
    code = (
        "import runpy, sys\n"
        f"try:\n    {run}\nexcept SystemExit:\n    pass\n"
        f"print(','.join(sorted(m for m in {modules!r} if m in sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return [m for m in out.stdout.strip().split(",") if m], out.stderr


def test_a_worker_child_process_loads_no_command_line_framework() -> None:
    """The children of ``--processes N`` run ``python -m conveyor.worker``."""
    run = (
        "sys.argv = ['conveyor.worker', '--app', 'no_such_module_here:app']; "
        "runpy.run_module('conveyor.worker', run_name='__main__')"
    )
    loaded, err = _modules_loaded(run, ("typer", "click", "pydantic", "rich"))
    assert loaded == [], err
    assert "no_such_module_here" in err


def test_a_worker_process_loads_neither_pydantic_nor_rich() -> None:
    """``conveyor worker`` (the console script) loads typer, but builds no typer command."""
    run = (
        "sys.argv = ['conveyor', 'worker', '--app', 'no_such_module_here:app']; "
        "from conveyor.cli import main; main()"
    )
    loaded, err = _modules_loaded(run, ("pydantic", "rich"))
    assert loaded == [], err
    assert "no_such_module_here" in err
