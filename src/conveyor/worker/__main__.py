"""``python -m conveyor.worker [options]``: ``conveyor worker`` on its own, without the rest of
the command line (the client commands pull in httpx and Rich; typer and click are not loaded
either). The supervisor of ``conveyor worker --processes N`` starts each worker process this
way, so a worker process loads only the worker, its engine and the app's tasks. Same options
and exit codes as ``conveyor worker``.
"""

from conveyor.worker.command import main

if __name__ == "__main__":
    main()
