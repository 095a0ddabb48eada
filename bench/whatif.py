"""Two experiments behind the next steps in bench/RESULTS.md (PostgreSQL, in-process only).

    .venv/bin/python -m bench.whatif          # about 1 minute

1. Statement replay: what a start and a completion would cost if the engine issued the
   same SQL without the ORM and its own Python. The statements (and parameters) of one
   real operation are captured with SQLAlchemy's cursor events and replayed in a
   transaction of their own: through ``Connection.exec_driver_sql`` (Core, no ORM);
   through a bare psycopg cursor; and through a psycopg pipeline (every statement sent
   before any answer is read: one round trip plus the COMMIT). Replays change nothing
   that matters: the UPDATEs match no row (the lock version and task status moved on),
   the INSERTs add rows nobody reads, unique columns get a new value per replay.
2. Incremental state write: completion in an instance with ``--depth`` (1,000)
   completions, cached engine, when ``state.dump`` writes only the tasks changed in this
   transaction (the rest of the stored state is left unusable: runs last).
"""
from __future__ import annotations

import argparse
import json
import statistics
from contextlib import contextmanager
from time import perf_counter

from sqlalchemy import event

from app.tuning import tune_gc

from .drivers import DEFAULT_PG_SERVER, hotline
from .measure import load_average, machine, ms, warm_up


@contextmanager
def captured(db):
    statements: list[tuple[str, object]] = []

    def before(_conn, _cursor, statement, parameters, _context, _many):
        # INSERTs of several rows come as one statement ("insertmanyvalues"): one dict of parameters
        assert isinstance(parameters, dict | tuple), "executemany is not replayed"
        statements.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(db.engine, "before_cursor_execute", before)


_UNIQUE = ("business_key", "spiff_task_id")  # columns with a unique constraint


def _fresh(parameters, n: str):
    if isinstance(parameters, dict) and any(k in parameters for k in _UNIQUE):
        return {**parameters, **{k: f"replay-{n}-{parameters[k]}"[:36] for k in _UNIQUE if k in parameters}}
    return parameters


def replay(db, statements, n: int, how: str) -> list[float]:
    samples = []
    for i in range(n):
        if how == "core":
            t0 = perf_counter()
            with db.engine.begin() as conn:
                for statement, parameters in statements:
                    conn.exec_driver_sql(statement, _fresh(parameters, f"c{i}"))
            samples.append(perf_counter() - t0)
            continue
        raw = db.engine.raw_connection()
        try:
            pg = raw.driver_connection
            t0 = perf_counter()
            with pg.cursor() as cur:
                if how == "pipeline":
                    with pg.pipeline():
                        for statement, parameters in statements:
                            cur.execute(statement, _fresh(parameters, f"p{i}"))
                else:
                    for statement, parameters in statements:
                        cur.execute(statement, _fresh(parameters, f"r{i}"))
            pg.commit()
            samples.append(perf_counter() - t0)
        finally:
            raw.close()
    return samples


@contextmanager
def delta_dump():
    from app.engine import state

    real, since = state.dump, {}

    def dump(serializer, workflow, *a, **kw):
        last = since.get(id(workflow), 0.0)
        tasks = list(workflow.tasks.values())
        changed = {str(t.id): serializer.to_dict(t) for t in tasks if t.last_state_change >= last}
        since[id(workflow)] = max((t.last_state_change for t in tasks), default=last)
        return json.dumps({"tasks": changed, "data": serializer.to_dict(workflow.data)}, cls=serializer._encoder_cls)

    state.dump = dump
    try:
        yield
    finally:
        state.dump = real


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.whatif", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=300, help="operations per variant (1)")
    p.add_argument("--depth", type=int, default=1000, help="completions before (2)")
    p.add_argument("--timed", type=int, default=15, help="timed completions per variant (2)")
    p.add_argument("--pg-server", default=DEFAULT_PG_SERVER)
    p.add_argument("--pg-database", default="hotline_bench_whatif")
    p.add_argument("--no-gc-tuning", action="store_true")
    args = p.parse_args(argv)
    args.keep_db = False
    if not args.no_gc_tuning:
        tune_gc()
    print(f"machine: {machine()}", flush=True)
    t_begin = perf_counter()
    with hotline("postgresql", args) as d:
        warm_up(d, 30)
        print("1. statement replay (medians of the operation / replay times):")
        tasks = iter(())

        def complete(_) -> None:
            d.complete(next(tasks), 1)

        for name, op in {"start": lambda _: d.start(), "completion": complete}.items():
            if name == "completion":  # started just before: all still in the engine's live cache
                tasks = iter(d.open_tasks([d.start() for _ in range(args.n + 1)]))
            samples, cache_before = [], d.cache_stats()
            for i in range(args.n):
                t0 = perf_counter()
                op(i)
                samples.append(perf_counter() - t0)
            hits, misses = (b - a for a, b in zip(cache_before, d.cache_stats(), strict=True))
            with captured(d.db) as statements:
                op(args.n)
            engine_ms = statistics.median(samples)
            print(f"   {name}: engine {ms(engine_ms)} ({1 / engine_ms:,.0f}/s, live cache {hits} hits, {misses} "
                  f"misses), {len(statements)} statements + BEGIN + COMMIT", flush=True)
            for how in ("core", "psycopg", "pipeline"):
                t = statistics.median(replay(d.db, statements, args.n, how))
                print(f"     replay {how:9} {ms(t)} ({1 / t:,.0f}/s)", flush=True)

        print(f"2. completion after {args.depth} completions, cached engine (median / mean):")
        instance = d.start()
        for n in range(1, args.depth + 1):
            d.complete(d.open_task(instance), n)
        done = args.depth

        def timed(label: str) -> None:
            nonlocal done
            d.complete(d.open_task(instance), done + 1)  # untimed: the first delta write is a full one
            done += 1
            samples = []
            for _ in range(args.timed):
                task = d.open_task(instance)
                done += 1
                t0 = perf_counter()
                d.complete(task, done)
                samples.append(perf_counter() - t0)
            print(f"   {label:40} {ms(statistics.median(samples))} / {ms(statistics.mean(samples))}", flush=True)

        timed("whole state written (as now)")
        with delta_dump():
            timed("only changed tasks written")
    print(f"load average at end {load_average()}; {perf_counter() - t_begin:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
