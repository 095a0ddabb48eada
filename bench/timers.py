"""Timers at scale: 100,000 instances waiting on timers, 1,000 falling due at once.

    .venv/bin/python -m bench.timers                       # the figures, PostgreSQL then SQLite (~10 min)
    .venv/bin/python -m bench.timers --backends postgresql --modes both
    .venv/bin/python -m bench.timers --waiting 200 --due 20 --idle-sizes 0,100 --idle-runs 5   # a smoke run

Measured in one run, per backend, on ``bench/data/timer_wait.bpmn`` (a timer catch event
whose duration comes from the start data, then a user task):

(1) idle sweep cost: one ``workers.sweeper.Sweeper`` pass (every step: timers, message
    expiry, schedules, the other steps present) with nothing due, at 0, 10,000 and 100,000
    instances waiting on a timer (one database per size); median of ``--idle-runs`` passes
    per step, in-process. The sizes are measured in turn, pass after pass, so load from other
    programs on the machine hits each alike. Baseline of the same run: one ``SELECT 1`` round
    trip. The figure that matters is the ratio at 100,000 / at 0 (it must stay about 1: a sweep
    reads due rows through the
    ``timer.due_at`` index, never the waiting ones); the due-timer query's plan is printed
    (PostgreSQL: EXPLAIN ANALYZE; SQLite: EXPLAIN QUERY PLAN).
(2) 1,000 due at once: with ``--waiting`` instances waiting, ``--due`` more are added whose
    timer falls due at one moment a few seconds ahead, while ``--workers`` real worker
    processes (``python -m workers``: RQ worker with scheduler + sweep thread) run. Measured:
    seconds from the due moment until the last of them fired. Modes:
    ``sweep``: no RQ jobs, the sweep (every 2 s) alone; ``rq``: an RQ job per timer (as the
    engine schedules them when it writes a timer row) and the sweep out of the way;
    ``both``: jobs + sweep, as production runs. Every run checks that each timer fired once
    (``instance_event``) and counts how many the RQ jobs fired (the rest: the sweep).

Waiting instances are clones of a real instance started through the engine (its serialized
state and timer row, bulk-inserted): see ``bench/timer_seed.py``. Redis: ``--redis-url``
(default ``HOTLINE_BENCH_REDIS_URL`` or ``redis://127.0.0.1:6379/5``): its ``engine`` queue and
registries are emptied before each run, and no other worker may serve that queue meanwhile.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path
from time import perf_counter

from sqlalchemy import event

from app.config import Settings
from app.container import Hotline
from app.engine import clock, timers
from app.migrate import upgrade
from app.tuning import tune_gc

from .drivers import DEFAULT_PG_SERVER, postgres_database, sqlite_database
from .measure import load_average, machine
from .timer_seed import Seeder, Workers

TARGET_FIRE_SECONDS = 10.0
TARGET_IDLE_MS = 10.0
SWEEP_SECONDS = 2.0  # the workers' default (HOTLINE_SWEEP_SECONDS)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


# --- (1) idle sweep ---------------------------------------------------------------------------

def idle_sweeps(hotlines: dict[int, Hotline], runs: int) -> dict[int, dict]:
    """Median cost of each sweep step and of a whole pass (the steps in a row), with nothing due.

    The databases of every size are measured in turn, pass after pass (the order rotating), so
    a change of load on the machine hits every size alike instead of skewing the ratios.
    """
    from workers.sweeper import Sweeper

    steps = {size: Sweeper(h.engine, SWEEP_SECONDS, threading.Event()).steps() for size, h in hotlines.items()}
    times: dict[int, dict[str, list[float]]] = {size: {name: [] for name, _ in st} for size, st in steps.items()}
    failed: dict[int, dict[str, str]] = {size: {} for size in hotlines}
    whole: dict[int, list[float]] = {size: [] for size in hotlines}
    round_trip: dict[int, list[float]] = {size: [] for size in hotlines}
    # Raw driver connections in autocommit: an SQLAlchemy one would hold SQLite's write lock (BEGIN IMMEDIATE).
    conns = {size: h.db.engine.raw_connection() for size, h in hotlines.items()}
    for conn in conns.values():
        if hasattr(conn.driver_connection, "autocommit"):
            conn.driver_connection.autocommit = True
    order = sorted(hotlines)
    try:
        for n in range(runs + 5):  # the first 5 passes warm up
            for size in order[n % len(order):] + order[:n % len(order)]:
                total = 0.0
                for name, call in steps[size]:
                    began = perf_counter()
                    try:
                        call()
                    except Exception as exc:  # noqa: BLE001 - a step another session is still building: say so
                        failed[size][name] = f"failed: {type(exc).__name__}: {exc}"
                    took = perf_counter() - began
                    total += took
                    if n >= 5:
                        times[size][name].append(took)
                began = perf_counter()
                cursor = conns[size].driver_connection.cursor()
                cursor.execute("SELECT 1")
                cursor.fetchone()
                cursor.close()
                if n >= 5:
                    whole[size].append(total)
                    round_trip[size].append(perf_counter() - began)
    finally:
        for conn in conns.values():
            if hasattr(conn.driver_connection, "autocommit"):
                conn.driver_connection.autocommit = False
            conn.close()

    def med(values: list[float]) -> float:
        return statistics.median(values) * 1000

    return {size: {"steps": {name: failed[size].get(name) or med(v) for name, v in times[size].items()},
                   "sweep": med(whole[size]), "select_1": med(round_trip[size])} for size in hotlines}


def due_query_plan(h: Hotline) -> str:
    """The plan of the query a sweep uses to find due timers (captured from the engine, not copied)."""
    captured: list[tuple[str, object]] = []

    def grab(conn, cursor, statement, parameters, context, executemany):
        if "FROM timer" in statement and not captured:
            captured.append((statement, parameters))

    event.listen(h.db.engine, "before_cursor_execute", grab)
    try:
        timers.due_instance_ids(h.engine, clock.now(), 500)
    finally:
        event.remove(h.db.engine, "before_cursor_execute", grab)
    statement, parameters = captured[0]
    prefix = "EXPLAIN (ANALYZE, BUFFERS) " if h.db.dialect == "postgresql" else "EXPLAIN QUERY PLAN "
    with h.db.engine.connect() as conn:
        rows = conn.exec_driver_sql(prefix + statement, parameters).all()
    if h.db.dialect == "postgresql":
        return "\n".join(r[0] for r in rows)
    return "\n".join(str(r[-1]) for r in rows)


# --- (2) many due at once ---------------------------------------------------------------------

def _clear_engine_queue(conn) -> None:
    """Drop the jobs an earlier run left on the engine queue: instance ids restart in every fresh
    database, so a stale timer job would fire (and be counted for) an instance of this run."""
    from rq import Queue

    from app.scheduling import ENGINE_QUEUE

    queue = Queue(ENGINE_QUEUE, connection=conn)
    queue.empty()
    for registry in (queue.scheduled_job_registry, queue.finished_job_registry, queue.failed_job_registry):
        for job_id in registry.get_job_ids():
            registry.remove(job_id, delete_job=True)


def fire_at_once(h: Hotline, seeder: Seeder, mode: str, args, log_dir: Path) -> dict:
    import redis
    from rq import Queue
    from rq.job import Job
    from rq.registry import FinishedJobRegistry

    from app.scheduling import ENGINE_QUEUE, schedule_timer_jobs, timer_job_id

    conn = redis.Redis.from_url(args.redis_url)
    _clear_engine_queue(conn)
    sweep = SWEEP_SECONDS if mode in ("sweep", "both") else 3600.0
    grace = 0.0 if mode == "sweep" else None  # the sweep alone must not wait for jobs that never come
    with Workers(args.workers, h.settings.database_url, args.redis_url, log_dir / mode, sweep, grace) as workers:
        due_at = clock.now() + timedelta(seconds=args.lead)
        began = perf_counter()
        ids = seeder.add(seeder.soon, args.due, due_at)
        if mode in ("rq", "both"):
            schedule_timer_jobs(conn, [(i, due_at) for i in ids])
        seeded = perf_counter() - began
        if clock.now() >= due_at:
            raise SystemExit(f"seeding {args.due} due instances took {seeded:.1f}s, past the due time: raise --lead")
        deadline = time.monotonic() + args.lead + args.fire_timeout
        left = seeder.timers_left(ids)
        while left and time.monotonic() < deadline:
            time.sleep(0.02)
            left = seeder.timers_left(ids)
        all_fired = (clock.now() - due_at).total_seconds()
        cpu = workers.cpu_used()
        if left:
            for log in sorted((log_dir / mode).glob("worker-*.log")):
                print(f"--- {log.name} (end)\n{log.read_text()[-3000:]}", flush=True)
    counts = seeder.fired_counts(ids)
    registry = FinishedJobRegistry(queue=Queue(ENGINE_QUEUE, connection=conn))
    ours = {timer_job_id(i, due_at) for i in ids}
    by_jobs = 0
    for job in Job.fetch_many([j for j in registry.get_job_ids() if j in ours], connection=conn):
        result = job.return_value() if job is not None else None
        by_jobs += bool(isinstance(result, dict) and result.get("fired"))
    conn.close()
    return {
        "mode": mode, "due": args.due, "workers": args.workers, "seconds_to_all_fired": round(all_fired, 2),
        "timers_left": left, "fired_once": sum(1 for c in counts.values() if c == 1),
        "fired_twice_or_more": sum(1 for c in counts.values() if c > 1), "never_fired": args.due - len(counts),
        "fired_by_rq_jobs": by_jobs, "fired_by_sweep": len(counts) - by_jobs, "seed_seconds": round(seeded, 2),
        "worker_cpu_seconds": cpu, "worker_cpu_ms_per_fire": round(cpu * 1000 / max(1, len(counts)), 1),
    }


# --- the run ------------------------------------------------------------------------------------

@contextmanager
def _database(backend: str, args, suffix: str):
    if backend == "postgresql":
        with postgres_database(args.pg_server, args.pg_database + suffix, args.keep_db) as url:
            yield url
    elif backend == "sqlite":
        with sqlite_database(args.keep_db) as url:
            yield url
    else:
        raise SystemExit(f"unknown backend {backend!r} (sqlite, postgresql)")


def _seed_to(h: Hotline, seeder: Seeder, size: int) -> None:
    missing = size - seeder.waiting_timers()
    if missing > 0:
        seeder.add(seeder.far, missing, clock.now() + timedelta(days=365))
    if h.db.dialect == "postgresql":
        with h.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE timer")
            conn.exec_driver_sql("VACUUM ANALYZE process_instance")
    else:
        with h.db.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")


def run_backend(backend: str, args, log_dir: Path) -> dict:
    """One database per idle size (measured in turn); the due-at-once runs on the largest."""
    from workers import jobs

    sizes = sorted(set(args.idle_sizes))
    out: dict = {"backend": backend, "idle": {}, "fire": []}
    with ExitStack() as stack:
        hotlines: dict[int, Hotline] = {}
        seeders: dict[int, Seeder] = {}
        for size in sizes:
            url = stack.enter_context(_database(backend, args, f"_{size}"))
            h = Hotline(Settings.from_env().but(database_url=url, redis_url=args.redis_url,
                                                instance_dir=log_dir / "instance"))
            stack.callback(h.close)
            upgrade(h.db)
            t0 = perf_counter()
            seeders[size] = Seeder(h.engine)
            _seed_to(h, seeders[size], size)
            hotlines[size] = h
            print(f"  [{backend}] {seeders[size].waiting_timers():,} waiting, seeded in {perf_counter() - t0:.1f}s",
                  flush=True)
        jobs.use(hotlines[sizes[0]])  # sweep steps that reach for the worker's Hotline get one
        stack.callback(jobs.use, None)
        for size, idle in idle_sweeps(hotlines, args.idle_runs).items():
            idle["waiting"] = seeders[size].waiting_timers()
            out["idle"][size] = idle
            print(f"  [{backend}] {idle['waiting']:,} waiting: whole sweep {idle['sweep']:.2f} ms, "
                  f"steps {idle['steps']}, SELECT 1 {idle['select_1']:.3f} ms", flush=True)
        h, seeder = hotlines[sizes[-1]], seeders[sizes[-1]]
        out["plan"] = due_query_plan(h)
        _seed_to(h, seeder, args.waiting)
        for mode in args.modes:
            result = fire_at_once(h, seeder, mode, args, log_dir)
            out["fire"].append(result)
            print(f"  [{backend}] {mode}: {result}", flush=True)
    return out


def report(results: list[dict], info: dict) -> None:
    print("\n== machine ==")
    for k, v in info.items():
        print(f"{k}: {v}")
    for r in results:
        print(f"\n== {r['backend']} ==")
        sizes = sorted(r["idle"])
        base = r["idle"][sizes[0]]
        print("idle sweep, median ms (ratio to the smallest size):")
        names = list(base["steps"])
        print("  " + "waiting".rjust(9) + "".join(n.rjust(28) for n in [*names, "whole sweep", "SELECT 1"]))
        for size in sizes:
            row = r["idle"][size]
            cells = []
            for name in names:
                v, b = row["steps"][name], base["steps"][name]
                cells.append(f"{v:.3f} ({v / b:.2f}x)" if isinstance(v, float) and isinstance(b, float) else str(v))
            cells.append(f"{row['sweep']:.3f} ({row['sweep'] / base['sweep']:.2f}x)")
            cells.append(f"{row['select_1']:.3f}")
            print("  " + f"{row['waiting']:,}".rjust(9) + "".join(c[:27].rjust(28) for c in cells))
        print("due-timer query plan at the largest size:")
        print("  " + r["plan"].replace("\n", "\n  "))
        for f in r["fire"]:
            verdict = "ok" if f["seconds_to_all_fired"] <= TARGET_FIRE_SECONDS and not f["timers_left"] else "MISSED"
            print(f"{f['due']} due at once, {f['workers']} workers, mode {f['mode']}: all fired "
                  f"{f['seconds_to_all_fired']}s after the due time [{verdict}, target {TARGET_FIRE_SECONDS:.0f}s]; "
                  f"by RQ jobs {f['fired_by_rq_jobs']}, by the sweep {f['fired_by_sweep']}; fired twice "
                  f"{f['fired_twice_or_more']}, never {f['never_fired']}; worker CPU {f['worker_cpu_seconds']}s "
                  f"({f['worker_cpu_ms_per_fire']} ms per timer)")
        largest = r["idle"][sizes[-1]]
        verdict = "ok" if largest["sweep"] <= TARGET_IDLE_MS else "MISSED"
        print(f"idle sweep at {largest['waiting']:,} waiting: {largest['sweep']:.2f} ms [{verdict}, "
              f"target {TARGET_IDLE_MS:.0f} ms]")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    import os

    p = argparse.ArgumentParser(prog="python -m bench.timers", description=__doc__.split("\n")[0])
    p.add_argument("--backends", default="postgresql,sqlite", type=lambda v: v.split(","))
    p.add_argument("--waiting", type=int, default=100_000, help="instances waiting on a far timer")
    p.add_argument("--due", type=int, default=1000, help="instances whose timer falls due at once")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--modes", default="sweep,rq,both", type=lambda v: [m for m in v.split(",") if m])
    p.add_argument("--idle-sizes", default="0,10000,100000", type=lambda v: [int(x) for x in v.split(",")])
    p.add_argument("--idle-runs", type=int, default=200)
    p.add_argument("--lead", type=float, default=6.0, help="seconds between seeding the due ones and their due time")
    p.add_argument("--fire-timeout", type=float, default=180.0)
    p.add_argument("--redis-url", default=os.environ.get("HOTLINE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/5"))
    p.add_argument("--pg-server", default=DEFAULT_PG_SERVER)
    p.add_argument("--pg-database", default="hotline_bench_timers")
    p.add_argument("--keep-db", action="store_true")
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--no-gc-tuning", action="store_true")
    args = p.parse_args(argv)
    for m in args.modes:
        if m not in ("sweep", "rq", "both"):
            p.error(f"unknown mode {m!r} (sweep, rq, both)")
    return args


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    if not args.no_gc_tuning:
        tune_gc()
    info = machine() | {"load average at start": load_average()}
    results = []
    with tempfile.TemporaryDirectory(prefix="hotline-bench-timers-") as tmp:
        for backend in args.backends:
            t0 = perf_counter()
            print(f"{backend}: seeding and measuring ...", flush=True)
            results.append(run_backend(backend, args, Path(tmp) / backend))
            print(f"{backend}: done in {perf_counter() - t0:.0f}s", flush=True)
    info["load average at end"] = load_average()
    report(results, info)
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": results}, indent=2, default=str))
    return results


if __name__ == "__main__":
    main()
