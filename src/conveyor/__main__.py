"""``python -m conveyor ...``: the same command line as the ``conveyor`` script (used by the
worker supervisor to start its children, and by tests that drive real processes)."""

from conveyor.cli import main

if __name__ == "__main__":
    main()
