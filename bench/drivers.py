"""What the benchmark drives: raw SpiffWorkflow in memory, and Hotline's ProcessEngine.

This module imports ``app.engine`` before any workflow is built, and importing it lifts
SpiffWorkflow's task-iterator ``max_depth`` for the whole process
(``app/engine/spiff_limits.py`` changes the class defaults, read at every call). The raw baseline therefore runs with
the lifted limit too: it measures SpiffWorkflow as Hotline uses it, and its stall check
shows that the lift works, not that SpiffWorkflow alone would get past ~500 loop rounds.
"""
from __future__ import annotations

import os
import statistics
import tempfile
from contextlib import contextmanager
from pathlib import Path
from time import perf_counter

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.parser import SpiffBpmnParser
from SpiffWorkflow.util.task import TaskIterator, TaskState
from sqlalchemy import create_engine, func, select, text, update
from sqlalchemy.orm import undefer

from app.db import Database
from app.engine import ProcessEngine, spiff_limits, state  # importing app.engine lifts max_depth (see above)
from app.migrate import upgrade
from app.models import HumanTask, Incident, ProcessInstance, TaskStatus
from app.services import identity

HERE = Path(__file__).resolve().parent
LOOP = HERE / "data" / "loop.bpmn"
KEY = "bench_loop"
NEVER = 10**9  # the loop's limit: instances never end during a run
ADMIN = "admin"
DEFAULT_PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"


assert spiff_limits.max_depth(TaskIterator) == spiff_limits.MAX_DEPTH, "app.engine did not lift the max_depth"


class Raw:
    """SpiffWorkflow alone, in memory: the baseline (no persistence at all)."""

    label = "raw"

    def __init__(self):
        parser = SpiffBpmnParser()
        parser.add_bpmn_file(str(LOOP))
        self.spec = parser.get_spec(KEY)
        self.subprocess_specs = parser.get_subprocess_specs(KEY)

    def start(self) -> BpmnWorkflow:
        wf = BpmnWorkflow(self.spec, self.subprocess_specs)
        for task in wf.get_tasks(state=TaskState.READY):
            task.set_data(limit=NEVER)
        wf.do_engine_steps()
        return wf

    def open_task(self, wf: BpmnWorkflow):
        return wf.get_next_task(state=TaskState.READY, manual=True)

    def open_tasks(self, wfs: list) -> list:
        return [self.open_task(wf) for wf in wfs]

    def complete(self, task, n: int) -> None:
        task.set_data(count=n)
        task.run()
        task.workflow.do_engine_steps()

    def state_size(self, wf) -> int | None:
        return None

    def health(self, wf) -> dict:
        return {}

    def close(self) -> None:
        pass


class Hotline:
    """The ProcessEngine facade on a freshly migrated database.

    ``live_workflows`` is the engine's per-process cache size (its default 512); 0 makes
    every call read and parse the stored state, as when another process ran the ticket last.
    """

    def __init__(self, label: str, db, engine):
        self.label, self.db, self.engine = label, db, engine

    @classmethod
    def create(cls, label: str, url: str) -> Hotline:
        db = Database(url)
        upgrade(db)
        with db.transaction() as s:
            identity.ensure_admin(s)
        engine = ProcessEngine(db, forms_dir=None)
        engine.deploy([LOOP], actor=ADMIN)
        return cls(label, db, engine)

    def cold(self) -> Hotline:
        """A second engine on the same database without the live-workflow cache."""
        return Hotline(self.label + " cold", self.db, ProcessEngine(self.db, forms_dir=None, live_workflows=0))

    def other(self) -> Hotline:
        """A second engine with a live-workflow cache of its own on the same database: another process."""
        return Hotline(self.label + " turns", self.db, ProcessEngine(self.db, forms_dir=None))

    @property
    def cached(self) -> bool:
        return self.engine.live.size > 0

    def cache_stats(self) -> tuple[int, int]:
        return self.engine.live.hits, self.engine.live.misses

    def start(self) -> int:
        return self.engine.start(KEY, {"limit": NEVER}, actor=ADMIN)

    def open_task(self, instance_id: int) -> int | None:
        with self.db.transaction() as s:
            return s.scalar(select(HumanTask.id).where(HumanTask.instance_id == instance_id,
                                                       HumanTask.status.in_(TaskStatus.ACTIVE))
                            .order_by(HumanTask.id.desc()).limit(1))

    def open_tasks(self, instance_ids: list[int]) -> list[int]:
        with self.db.transaction() as s:
            rows = s.execute(select(HumanTask.instance_id, HumanTask.id).where(
                HumanTask.instance_id.in_(instance_ids), HumanTask.status.in_(TaskStatus.ACTIVE))).all()
        by_instance = dict(rows)
        return [by_instance[i] for i in instance_ids]

    def complete(self, task_id: int, n: int) -> None:
        self.engine.complete(task_id, ADMIN, {"count": n})

    def state_size(self, instance_id: int) -> int:
        with self.db.transaction() as s:
            return s.scalar(select(func.length(ProcessInstance.state)).where(ProcessInstance.id == instance_id))

    def health(self, instance_id: int) -> dict:
        """Status and open incidents: a stuck loop now becomes an incident (status error)."""
        with self.db.transaction() as s:
            status = s.scalar(select(ProcessInstance.status).where(ProcessInstance.id == instance_id))
            open_incidents = s.scalar(select(func.count()).select_from(Incident).where(
                Incident.instance_id == instance_id, Incident.status == "open"))
        return {"status": status, "open incidents": open_incidents}

    def serde_seconds(self, instance_id: int) -> tuple[float, float, float]:
        """state.load, its first state.dump, and a dump of a workflow dumped before (what the
        cached engine pays: finished tasks' JSON is kept between dumps), alone (median of 3)."""
        with self.db.transaction() as s:
            instance = s.get(ProcessInstance, instance_id, options=[undefer(ProcessInstance.state)])
            compiled = self.engine.specs.get(s, instance.version_id)
            stored = instance.state
        serializer = compiled.dialect.serializer
        loads, dumps, kept = [], [], []
        for _ in range(3):
            t0 = perf_counter()
            wf = state.load(serializer, stored, compiled.spec, compiled.subprocess_specs, None)
            t1 = perf_counter()
            state.dump(serializer, wf)
            t2 = perf_counter()
            state.dump(serializer, wf)
            t3 = perf_counter()
            state.dump(serializer, wf)
            kept.append(perf_counter() - t3)
            dumps.append(t2 - t1)
            loads.append(t1 - t0)
        return statistics.median(loads), statistics.median(dumps), statistics.median(kept)

    def floor_op(self, instance_id: int) -> None:
        """The least an engine transaction can cost here: one UPDATE of the instance row."""
        with self.db.transaction() as s:
            s.execute(update(ProcessInstance).where(ProcessInstance.id == instance_id).values(priority=50))

    def close(self) -> None:
        self.db.dispose()


# --- databases ------------------------------------------------------------------

def _pg_admin(server: str, sql: str) -> None:
    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(sql))
    finally:
        admin.dispose()


@contextmanager
def postgres_database(server: str, name: str, keep: bool):
    _pg_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _pg_admin(server, f'CREATE DATABASE "{name}"')
    try:
        yield f"{server}/{name}"
    finally:
        if not keep:
            _pg_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def sqlite_database(keep: bool):
    tmp = tempfile.mkdtemp(prefix="hotline-bench-")
    path = Path(tmp) / "bench.db"
    try:
        yield f"sqlite:///{path}"
    finally:
        if not keep:
            for p in Path(tmp).glob("*"):
                p.unlink()
            os.rmdir(tmp)


@contextmanager
def hotline(backend: str, args, suffix: str = ""):
    """A migrated, deployed Hotline driver on a fresh database of ``backend``, dropped afterwards."""
    if backend == "sqlite":
        db_context = sqlite_database(args.keep_db)
    elif backend == "postgresql":
        db_context = postgres_database(args.pg_server, args.pg_database + suffix, args.keep_db)
    else:
        raise SystemExit(f"unknown backend {backend!r} (sqlite, postgresql)")
    with db_context as url:
        d = Hotline.create(backend, url)
        try:
            yield d
        finally:
            d.close()
