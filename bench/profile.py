"""``python -m bench.engine --profile``: where the time goes, on PostgreSQL.

Two passes over the same workloads: start; completion in a fresh instance; completion in
an instance with ``--profile-depth`` (1,000) completions; both completions with the
live-workflow cache (cached) and without it (cold, ``live_workflows=0``).

1. pyinstrument call trees (no wrappers installed yet) -> ``bench/profiles/pg_*.txt``.
2. Phase tables -> ``bench/profiles/phases.txt``: exclusive wall time per engine phase
   from wrappers installed in this process only (``app/`` is not modified). Nested phases
   are subtracted from their parent; every SQL statement is timed by SQLAlchemy cursor
   events, psycopg's own BEGIN / COMMIT by wrapping ``Connection._exec_command``, so the
   ``SQL`` rows' calls/op are the round trips to the server; GC through ``gc.callbacks``.
   Instrumented totals come out 10-20% above the plain figures.
"""
from __future__ import annotations

import functools
import gc
import json
from collections import defaultdict
from contextlib import contextmanager, nullcontext
from pathlib import Path
from time import perf_counter
from types import SimpleNamespace

from .drivers import hotline
from .measure import machine, warm_up


class Phases:
    """Exclusive wall time per named phase (nested phases are subtracted from their parent)."""

    def __init__(self):
        self.stack: list[list] = []
        self.exclusive: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.on = False

    def enter(self, name: str) -> None:
        if not self.on:
            return
        now = perf_counter()
        if self.stack:
            parent = self.stack[-1]
            self.exclusive[parent[0]] += now - parent[1]
        self.stack.append([name, now])

    def exit(self) -> None:
        if not self.on or not self.stack:
            return
        now = perf_counter()
        name, since = self.stack.pop()
        self.exclusive[name] += now - since
        self.calls[name] += 1
        if self.stack:
            self.stack[-1][1] = now

    def wrap(self, name: str, fn):
        @functools.wraps(fn)
        def wrapper(*a, **kw):
            self.enter(name)
            try:
                return fn(*a, **kw)
            finally:
                self.exit()

        return wrapper

    def reset(self) -> None:
        self.exclusive.clear()
        self.calls.clear()
        self.stack.clear()

    def table(self, ops: int, title: str) -> str:
        total = sum(self.exclusive.values())
        sql = {k: v for k, v in self.exclusive.items() if k.startswith("SQL ")}
        trips, waited = sum(self.calls[k] for k in sql) / ops, sum(sql.values())
        lines = [f"-- {title}: {ops} operations, {total / ops * 1000:.2f} ms each (instrumented)",
                 f"   round trips {trips:.1f}/op; SQL (client wait incl. server) {waited / ops * 1000:.2f} ms"
                 f" = {waited / total * 100:.0f}%, Python {100 - waited / total * 100:.0f}%",
                 f"   {'phase (exclusive time)':58}{'ms/op':>9}{'share':>8}{'calls/op':>10}"]
        for name, spent in sorted(self.exclusive.items(), key=lambda kv: -kv[1]):
            lines.append(f"   {name:58}{spent / ops * 1000:9.3f}{spent / total * 100:7.1f}%"
                         f"{self.calls[name] / ops:10.1f}")
        return "\n".join(lines)


def sql_label(statement: str) -> str:
    """'SQL UPDATE process_instance', 'SQL SELECT human_task', ... for the phase tables."""
    words = statement.split()
    upper = [w.upper() for w in words]
    verb = upper[0] if upper else "?"
    after = {"SELECT": "FROM", "DELETE": "FROM", "INSERT": "INTO"}.get(verb, verb)
    table = "?"
    if after in upper:
        i = upper.index(after) + 1
        if i < len(words):
            table = words[i].strip('"(')
    suffix = " (row lock)" if verb == "SELECT" and "FOR" in upper[-4:] else ""
    return f"SQL {verb} {table}{suffix}"


def instrument(phases: Phases, db) -> None:
    """Wrap the engine's phases in this process only."""
    import psycopg
    import SpiffWorkflow.bpmn.serializer.workflow as spiff_serializer_module
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    from app.engine import compile as compile_mod
    from app.engine import instances, live, records, runtime, specs, state, tasks
    from app.engine.dialects import DIALECTS
    from app.services import identity

    w = phases.wrap

    def _gc(phase, _info):
        if phase == "start":
            phases.enter("GC (cyclic collector)")
        else:
            phases.exit()

    gc.callbacks.append(_gc)

    def patch(owner, name: str, label: str) -> None:
        """Wrap ``owner.name`` if the engine still has it (it may have been changed since)."""
        if hasattr(owner, name):
            setattr(owner, name, w(label, getattr(owner, name)))
        else:
            print(f"  (not instrumented: {getattr(owner, '__name__', owner)}.{name} no longer exists)")

    advance_label = "advance: refresh_timers + do_engine_steps"
    patch(records, "lock_instance", "lock instance row (records)")
    patch(records, "task_to_complete", "complete: task + user + locked instance (records)")
    patch(specs.SpecCache, "get", "spec cache lookup")
    patch(live.LiveWorkflows, "take", "live cache take (frees an outdated entry)")
    patch(live.LiveWorkflows, "put", "live cache put (frees what it lets go)")
    patch(state, "load", "state.load (rest: Workflow(), script engine)")
    patch(state, "dump", "state.dump (rest)")
    patch(state, "_parse", "state.load: parse (orjson)")
    patch(state, "_task_texts", "state.load: the tasks' lines")
    patch(state._Fragments, "seeded", "state.load: seed the tasks' JSON")
    state.json = SimpleNamespace(loads=json.loads, dumps=w("state.dump: json.dumps", json.dumps))
    spiff_serializer_module.json = SimpleNamespace(dumps=w("state.dump: json.dumps", json.dumps), loads=json.loads)
    for dialect in DIALECTS.values():
        ser = dialect.serializer
        patch(ser, "migrate", "state.load: serializer.migrate")
        patch(ser, "from_dict", "state.load: serializer.from_dict (tasks)")
        patch(ser, "to_dict", "state.dump: serializer.to_dict (tasks)")
    patch(tasks, "finish_task", "action: finish_task (set_data, task.run, UPDATE)")
    patch(identity, "require_actor", "complete: require_actor (groups only when needed)")
    for name in ("insert_instance", "save_instance", "insert_tasks", "insert_events", "mark_task", "active_tasks"):
        patch(records, name, f"records: {name} (excl. SQL)")
    patch(runtime, "advance", advance_label)
    patch(instances, "advance", advance_label)
    patch(runtime, "survey", "sync: survey (one pass over the tasks)")
    patch(runtime, "_check_not_stuck", "sync: _check_not_stuck")
    for name in ("sync_history", "sync_subscriptions", "sync_human_tasks", "sync_timers"):
        patch(runtime, name, f"sync: {name} (excl. SQL)")
    patch(runtime, "finish", "finish (rest: status, events, add_all)")
    instances.finish = runtime.finish
    patch(instances, "next_business_key", "start: next_business_key (excl. SQL)")
    patch(instances, "insert_numbered_instance", "start: insert_numbered_instance (excl. SQL)")
    patch(compile_mod.CompiledVersion, "new_workflow", "start: new_workflow (BpmnWorkflow())")
    Session.flush = w("ORM flush (excl. SQL)", Session.flush)

    exec_command = psycopg.Connection._exec_command

    def _exec_command(self, command, *a, **kw):  # a generator, like the one it wraps
        name = command.decode() if isinstance(command, bytes) else str(command)
        phases.enter(f"SQL {name.split()[0].upper() if name.split() else '?'} (psycopg)")
        try:
            return (yield from exec_command(self, command, *a, **kw))
        finally:
            phases.exit()

    psycopg.Connection._exec_command = _exec_command

    @event.listens_for(db.engine, "before_cursor_execute")
    def _before(_conn, _cursor, statement, *_):
        phases.enter(sql_label(statement))

    @event.listens_for(db.engine, "after_cursor_execute")
    def _after(*_):
        phases.exit()


def main_profile(args) -> None:
    """pyinstrument first (no wrappers installed), then the instrumented phase tables."""
    from pyinstrument import Profiler

    out_dir = Path(args.profile_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    info = machine()
    print(f"machine: {info}", flush=True)
    with hotline("postgresql", args, suffix="_profile") as d:
        cold = d.cold()
        warm_up(d, args.warmup)
        warm_up(cold, args.warmup)
        n, depth, deep_n = args.profile_ops, args.profile_depth, args.profile_deep_ops
        deep = d.start()
        done = 0
        for _ in range(depth):
            done += 1
            d.complete(d.open_task(deep), done)
        print(f"  instance driven to {depth} completions, state {d.state_size(deep) / 1024:,.0f} KiB", flush=True)

        def deep_ops(driver, around) -> None:
            """``deep_n`` completions by ``driver`` in the deep instance, after one untimed one
            (which fills the cached engine's entry if the other engine ran the instance last)."""
            nonlocal done
            for i in range(deep_n + 1):
                task = driver.open_task(deep)  # not part of the measured operation
                done += 1
                with around() if i else nullcontext():
                    driver.complete(task, done)

        def fresh_ops(driver, around) -> None:
            """Starts ``n`` instances (untimed), then completes them: started just before, they
            are all still in the cached engine's live cache (an LRU of 512)."""
            for task in driver.open_tasks([driver.start() for _ in range(n)]):
                with around():
                    driver.complete(task, 1)

        def start_ops(around) -> None:
            for _ in range(n):
                with around():
                    d.start()

        workloads = [  # file name, title, run(around)
            ("pg_start", "start", start_ops),
            ("pg_complete_fresh", "completion in a fresh instance, cached",
             lambda around: fresh_ops(d, around)),
            ("pg_complete_fresh_cold", "completion in a fresh instance, cold",
             lambda around: fresh_ops(cold, around)),
            (f"pg_complete_{depth}", f"completion in an instance with {depth}+ completions, cached",
             lambda around: deep_ops(d, around)),
            (f"pg_complete_{depth}_cold", f"completion in an instance with {depth}+ completions, cold",
             lambda around: deep_ops(cold, around)),
        ]

        # 1. pyinstrument
        for name, _title, run in workloads:
            profiler = Profiler(interval=0.0005)

            @contextmanager
            def profiling(profiler=profiler):
                profiler.start()
                try:
                    yield
                finally:
                    profiler.stop()

            run(profiling)
            path = out_dir / f"{name}.txt"
            path.write_text(profiler.output_text(unicode=True, color=False, time="percent_of_total"))
            print(f"  wrote {path}", flush=True)

        # 2. phase tables, wrappers installed now
        phases = Phases()
        instrument(phases, d.db)
        summary = []

        @contextmanager
        def phased():
            phases.on = True
            phases.enter("total (uncategorised Python)")
            try:
                yield
            finally:
                phases.exit()
                phases.on = False

        for _name, title, run in workloads:
            before = d.cache_stats(), cold.cache_stats()
            run(phased)
            hits, misses = (sum(after[i] - was[i] for was, after in zip(before, (d.cache_stats(), cold.cache_stats()),
                                                                         strict=True)) for i in (0, 1))
            ops = deep_n if "instance with" in title else n
            summary.append(phases.table(ops, f"{title} (live cache {hits} hits, {misses} misses)"))
            print(summary[-1], flush=True)
            phases.reset()
        header = "\n".join(f"# {k}: {v}" for k, v in info.items())
        (out_dir / "phases.txt").write_text(header + "\n\n" + "\n\n".join(summary) + "\n")
        print(f"  wrote {out_dir / 'phases.txt'}")
