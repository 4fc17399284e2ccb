"""Run the workloads for one (system, backend) in this process and write the result as JSON.

    python -m peers.run_one --system celery --backend redis --url redis://... \
        --spec '{"jobs": 2000}' --workdir /tmp/x --out /tmp/x/result.json

``bench/compare.py`` starts one of these per run, with a timeout; the worker PIDs are
appended to ``$BENCH_PIDFILE`` so the parent can kill them if this process is killed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
from pathlib import Path

from peers.workload import Result, Spec, run

MODULES = {
    ("conveyor", "sqlite"): "peers.conveyor_peer",
    ("conveyor", "postgresql"): "peers.conveyor_peer",
    ("conveyor", "redis"): "peers.conveyor_peer",
    ("huey", "sqlite"): "peers.huey_peer",
    ("procrastinate", "postgresql"): "peers.procrastinate_peer",
    ("pgqueuer", "postgresql"): "peers.pgqueuer_peer",
    ("celery", "redis"): "peers.celery_peer",
    ("rq", "redis"): "peers.rq_peer",
    ("dramatiq", "redis"): "peers.dramatiq_peer",
    ("arq", "redis"): "peers.arq_peer",
    ("huey", "redis"): "peers.huey_peer",
    ("taskiq", "redis"): "peers.taskiq_peer",
}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--system", required=True)
    p.add_argument("--backend", required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--spec", default="{}")
    p.add_argument("--workdir", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    spec = Spec(**json.loads(args.spec))
    ledger_dir = args.workdir / "ledger"
    ledger_dir.mkdir(parents=True, exist_ok=True)
    bench_dir = Path(__file__).resolve().parent.parent
    env = dict(os.environ)
    env.update(
        BENCH_URL=args.url,
        BENCH_BACKEND=args.backend,
        BENCH_LEDGER_DIR=str(ledger_dir),
        PYTHONPATH=os.pathsep.join([str(bench_dir), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        CONVEYOR_LOG_LEVEL="warning",
    )
    os.environ.update(BENCH_URL=args.url, BENCH_BACKEND=args.backend)
    try:
        module = importlib.import_module(MODULES[(args.system, args.backend)])
        adapter = module.Adapter(args.backend, args.url)
    except Exception as exc:
        res = Result(args.system, args.backend, error=f"{type(exc).__name__}: {exc}"[:300])
    else:
        res = run(adapter, spec, env, ledger_dir, args.workdir / "workers.log")
    args.out.write_text(json.dumps(res.as_dict()))


if __name__ == "__main__":
    main()
