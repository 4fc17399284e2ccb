"""``python -m conveyor.worker [options]``: ``conveyor worker`` on its own, without the rest of
the command line (the client commands pull in httpx and Rich). The supervisor of
``conveyor worker --processes N`` starts each worker process this way, so a worker process
loads only the worker, its engine and the app's tasks. Same options and exit codes as
``conveyor worker``.

A worker process writes log lines and never draws on a terminal, so Rich is kept out of it
(about 5 MiB of its RSS): structlog imports Rich when it is installed, only for the pretty
tracebacks of its console renderer, and typer for help screens; both work without it.
"""

import os
import sys

if "rich" not in sys.modules:
    os.environ.setdefault("TYPER_USE_RICH", "0")
    sys.modules["rich"] = None  # type: ignore[assignment]  # "import rich" raises ImportError

from conveyor.cli.worker import worker_main

if __name__ == "__main__":
    worker_main()
