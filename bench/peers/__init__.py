"""The peer job systems for ``bench/compare.py``: one module per system, each holding both
the worker side (the app or broker its worker command imports) and the harness side (an
``Adapter`` that enqueues and names the worker commands). ``ledger`` is the side channel the
jobs record their start/end times through; ``workload`` runs the identical workloads;
``run_one`` runs one (system, backend) in its own process so a hang can be killed.
"""
