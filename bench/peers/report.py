"""``bench/results.md`` from the raw runs: medians per (system, backend) over the rounds
whose phase verified, and Conveyor's ratio to the fastest peer on the same backend."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict

from peers.workload import Spec

Run = dict

BACKENDS = ("sqlite", "postgresql", "redis")


def _ok(run: Run, phase: str) -> bool:
    return not run.get("error") and run.get("verified", {}).get(phase) == "ok"


def _median(runs: Sequence[Run], phase: str, get: Callable[[Run], float | None]) -> float | None:
    values = [v for r in runs if _ok(r, phase) and (v := get(r)) is not None]
    return statistics.median(values) if values else None


def _num(v: float | None, digits: int = 0) -> str:
    return "—" if v is None else f"{v:,.{digits}f}"


def _lat(q: str) -> Callable[[Run], float | None]:
    return lambda r: r.get("latency_ms", {}).get(q)


def _cpu(part: str) -> Callable[[Run], float | None]:
    return lambda r: r.get("cpu_us_per_job", {}).get(part)


def _cpu_total(run: Run) -> float | None:
    cpu = run.get("cpu_us_per_job", {})
    return cpu["workers"] + cpu["server"] if cpu else None


def summarize(runs: Sequence[Run]) -> dict[tuple[str, str], dict[str, float | None | str]]:
    groups: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        groups.setdefault((r["system"], r["backend"]), []).append(r)
    out: dict[tuple[str, str], dict[str, float | None | str]] = {}
    for key, rs in groups.items():
        problems = sorted({f"{ph}: {v}" for r in rs for ph, v in r.get("verified", {}).items()
                           if v != "ok"} | {r["error"] for r in rs if r.get("error")})  # fmt: skip
        out[key] = {
            "single": _median(rs, "throughput", lambda r: r.get("enqueue_single")),
            "bulk": _median(rs, "throughput", lambda r: r.get("enqueue_bulk")),
            "processed": _median(rs, "throughput", lambda r: r.get("processed")),
            "p50": _median(rs, "latency", _lat("p50")),
            "p95": _median(rs, "latency", _lat("p95")),
            "p99": _median(rs, "latency", _lat("p99")),
            "max": _median(rs, "latency", _lat("max")),
            "mix": _median(rs, "mix", lambda r: r.get("mix_processed")),
            "rss_max": _median(rs, "mix", lambda r: r.get("rss_max_mib")),
            "rss_sum": _median(rs, "mix", lambda r: r.get("rss_sum_mib")),
            "cpu_workers": _median(rs, "throughput", _cpu("workers")),
            "cpu_server": _median(rs, "throughput", _cpu("server")),
            "cpu": _median(rs, "throughput", _cpu_total),
            "runs": f"{sum(1 for r in rs if not r.get('error'))}/{len(rs)}",
            "problems": "; ".join(p.replace("|", "/").replace("\n", " ")[:160] for p in problems),
            "notes": next((r.get("notes", "") for r in rs if r.get("notes")), ""),
        }
    return out


def _ratio(conv: float | None, best: float | None, lower_is_better: bool) -> str:
    if conv is None or best is None or conv <= 0 or best <= 0:
        return "—"
    return f"{(best / conv) if lower_is_better else (conv / best):.2f}x"


def ratios(summary: dict[tuple[str, str], dict[str, float | None | str]]) -> list[str]:
    lines = [
        "| backend | fastest peer (processed) | bulk enqueue | single enqueue | processed "
        "| mix | pickup p50 | pickup p99 | CPU per job |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for backend in BACKENDS:
        conv = summary.get(("conveyor", backend))
        peers = {s: v for (s, b), v in summary.items() if b == backend and s != "conveyor"}
        if conv is None or not peers:
            continue
        cells = []
        for metric, low in (("bulk", False), ("single", False), ("processed", False),
                            ("mix", False), ("p50", True), ("p99", True),
                            ("cpu", True)):  # fmt: skip
            vals = [(v[metric], s) for s, v in peers.items() if isinstance(v[metric], float)]
            if not vals:
                cells.append("—")
                continue
            best, who = min(vals) if low else max(vals)
            cells.append(f"{_ratio(conv[metric], best, low)} ({who})")  # type: ignore[arg-type]
        fastest = max(((v["processed"], s) for s, v in peers.items()
                       if isinstance(v["processed"], float)), default=(None, "—"))  # fmt: skip
        lines.append(f"| {backend} | {fastest[1]} | " + " | ".join(cells) + " |")
    return lines


def _cpu_cell(v: dict[str, float | None | str]) -> str:
    total, workers, server = v["cpu"], v["cpu_workers"], v["cpu_server"]
    if not isinstance(total, float) or not isinstance(workers, float):
        return "—"
    if not isinstance(server, float) or server == 0:
        return f"{total:,.0f}"
    return f"{total:,.0f} ({workers:,.0f} + {server:,.0f})"


def render(runs: Sequence[Run], spec: Spec, info: dict[str, str]) -> str:
    summary = summarize(runs)
    s = asdict(spec)
    loads = [r["load1"] for r in runs if "load1" in r]
    load = (
        f" 1-minute load average when the runs began: {min(loads):.1f}-{max(loads):.1f} "
        f"(a load above the {info['nproc']} CPUs means a shared machine and pessimistic numbers)."
        if loads
        else ""
    )
    head = [
        "# Conveyor and its peers, side by side",
        "",
        f"{info['date']} · {info['nproc']} CPUs ({info['cpu']}), {info['ram']} RAM · "
        f"Python {info['python']} · {info['os']}",
        "",
        f"{info['rounds']} round(s), alternating, medians shown; whole run {info['total']}. "
        f"Servers: {info['durability']}. Versions: {info['versions']}.{load}",
        "",
        f"Workloads (`bench/peers/workload.py`): {s['single']:,} jobs enqueued one call each, "
        f"then {s['jobs']:,} no-op jobs through the bulk path (batches of {s['batch']}), all "
        f"processed by {s['processes']} worker processes at concurrency {s['concurrency']} "
        f"(processed jobs/s over all {s['single'] + s['jobs']:,}, first start to last end); "
        f"pickup latency over {s['latency_jobs']:,} jobs enqueued one at a time at "
        f"{s['rate']:g}/s to idle workers (job start minus the instant before the enqueue "
        "call; asyncio libraries are called from inside one running event loop); "
        f"mix: {s['mix_jobs']:,} jobs sleeping 1-50 ms, concurrency "
        f"{s['mix_concurrency']} per process; RSS of every process of the mix workers; "
        "CPU per job: user + system time of the throughput phase's worker processes and of "
        "the server's processes (none for SQLite), per job, from the moment a tenth of the "
        "jobs had run (start-up left out) to the last. "
        "A phase that lost or duplicated a job shows — and is listed under problems.",
        "",
        "| system | backend | single enqueue/s | bulk enqueue/s | processed/s | p50 ms | p95 ms "
        "| p99 ms | max ms | mix jobs/s | RSS max MiB | RSS sum MiB | CPU µs/job (workers + "
        "server) | runs ok | problems |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | --- | --- |",
    ]
    for backend in BACKENDS:
        for (system, b), v in sorted(summary.items(), key=lambda kv: kv[0][0] != "conveyor"):
            if b != backend:
                continue
            head.append(
                f"| {'**conveyor**' if system == 'conveyor' else system} | {b} "
                f"| {_num(v['single'])} | {_num(v['bulk'])} | {_num(v['processed'])} "  # type: ignore[arg-type]
                f"| {_num(v['p50'], 1)} | {_num(v['p95'], 1)} | {_num(v['p99'], 1)} "  # type: ignore[arg-type]
                f"| {_num(v['max'], 1)} | {_num(v['mix'])} | {_num(v['rss_max'], 1)} "  # type: ignore[arg-type]
                f"| {_num(v['rss_sum'], 1)} | {_cpu_cell(v)} | {v['runs']} | {v['problems']} |"  # type: ignore[arg-type]
            )
    head += [
        "",
        "## Conveyor's ratio to the fastest peer on the same backend",
        "",
        "Above 1x Conveyor is ahead (rates: Conveyor / best peer; latency and CPU per job: "
        "best peer / Conveyor). The peer named is the best one for that column.",
        "",
        *ratios(summary),
        "",
        "## How each system ran",
        "",
        *(f"- {sys_}/{b}: {v['notes']}" for (sys_, b), v in sorted(summary.items())),
        "",
    ]
    return "\n".join(head)
