"""Seeding waiting instances fast, and running real workers, for ``bench.timers``.

100,000 engine starts would take minutes; instead one real instance per kind of wait is
started through the engine, and its serialized state and timer row are cloned with bulk
inserts (the state is the real one: firing a clone runs the same engine code as firing
the original). ``Workers`` runs ``python -m workers`` processes, as production does.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, insert, select
from sqlalchemy.orm import undefer

from app.engine import clock
from app.models import InstanceEvent, InstanceStatus, ProcessInstance, Timer

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PROCESS = HERE / "data" / "timer_wait.bpmn"
KEY = "bench_timer"
CHUNK = 2000
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True)
class Template:
    tag: str
    version_id: int
    state: str
    spiff_task_id: str
    element_id: str

    def clone(self) -> tuple[str, str]:
        """(state, timer's spiff task id) of a copy with task ids of its own: task ids are unique
        (human_task.spiff_task_id), and the clone's user task must not collide with the template's."""
        fresh: dict[str, str] = {}

        def swap(m: re.Match) -> str:
            return fresh.setdefault(m.group(0), str(uuid.uuid4()))

        state = _UUID.sub(swap, self.state)
        return state, fresh.get(self.spiff_task_id, self.spiff_task_id)


class Seeder:
    """Deploys the bench process and clones real waiting instances in bulk."""

    def __init__(self, engine):
        self.engine = engine
        engine.deploy([PROCESS], actor="bench")
        self.far = self._template("far", "P365D")  # waits a year: never due while the bench runs
        self.soon = self._template("soon", "PT1S")  # its state is due a second after the template started
        self._seq = 0

    def _template(self, tag: str, wait_for: str) -> Template:
        iid = self.engine.start(KEY, {"wait_for": wait_for}, "bench")
        with self.engine.db.transaction() as s:
            row = s.get(ProcessInstance, iid, options=[undefer(ProcessInstance.state)])
            [timer] = s.scalars(select(Timer).where(Timer.instance_id == iid)).all()
            return Template(tag, row.version_id, row.state, timer.spiff_task_id, timer.element_id)

    def add(self, template: Template, n: int, due_at: datetime) -> list[int]:
        """``n`` clones of ``template`` waiting on a timer due at ``due_at``; their ids."""
        ids: list[int] = []
        now = clock.now()
        for offset in range(0, n, CHUNK):
            count = min(CHUNK, n - offset)
            rows, task_ids = [], []
            for _ in range(count):
                self._seq += 1
                state, task_id = template.clone()
                task_ids.append(task_id)
                rows.append({"version_id": template.version_id, "business_key": f"BENCH-{self._seq:09d}",
                             "title": "bench timer", "status": InstanceStatus.WAITING, "priority": 50,
                             "state": state, "lock_version": 1, "started_by": "bench",
                             "started_at": now, "updated_at": now})
            with self.engine.db.transaction() as s:
                new = list(s.scalars(insert(ProcessInstance).returning(ProcessInstance.id,
                                                                       sort_by_parameter_order=True), rows))
                s.execute(insert(Timer), [{"instance_id": i, "spiff_task_id": t, "element_id": template.element_id,
                                           "due_at": due_at} for i, t in zip(new, task_ids, strict=True)])
            ids.extend(new)
        return ids

    def waiting_timers(self) -> int:
        with self.engine.db.transaction() as s:
            return s.scalar(select(func.count()).select_from(Timer))

    def fired_counts(self, ids: list[int]) -> dict[int, int]:
        """{instance id: timer_fired events} for the instances in ``ids`` (a contiguous range)."""
        with self.engine.db.transaction() as s:
            return dict(s.execute(
                select(InstanceEvent.instance_id, func.count()).where(
                    InstanceEvent.kind == "timer_fired", InstanceEvent.instance_id.between(min(ids), max(ids)))
                .group_by(InstanceEvent.instance_id)).all())

    def timers_left(self, ids: list[int]) -> int:
        with self.engine.db.transaction() as s:
            return s.scalar(select(func.count()).select_from(Timer).where(
                Timer.instance_id.between(min(ids), max(ids))))


class Workers:
    """``python -m workers`` processes (RQ worker with its scheduler + its sweep process)."""

    def __init__(self, n: int, database_url: str, redis_url: str, log_dir: Path, sweep_seconds: float,
                 sweep_grace_seconds: float | None = None):
        log_dir.mkdir(parents=True, exist_ok=True)
        self.logs = [log_dir / f"worker-{i}.log" for i in range(n)]
        self.env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=redis_url,
                        HOTLINE_INSTANCE_DIR=str(log_dir / "instance"), HOTLINE_SWEEP_SECONDS=str(sweep_seconds),
                        PYTHONPATH=str(ROOT))
        if sweep_grace_seconds is not None:  # else the workers' default, as production runs
            self.env["HOTLINE_SWEEP_GRACE_SECONDS"] = str(sweep_grace_seconds)
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> Workers:
        for log in self.logs:
            log.write_text("")
            self.procs.append(subprocess.Popen([sys.executable, "-m", "workers"], cwd=ROOT, env=self.env,
                                               stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                                               start_new_session=True))
        deadline = time.monotonic() + 60
        while not all("Listening on" in log.read_text() for log in self.logs):
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                tail = "\n".join(log.read_text()[-1500:] for log in self.logs)
                self.__exit__()
                raise RuntimeError(f"the workers did not start:\n{tail}")
            time.sleep(0.1)
        self._cpu_at_start = self.cpu_seconds()
        return self

    def cpu_seconds(self) -> float:
        """CPU time of the worker processes and their descendants alive now (the sweep process)
        plus their finished children (RQ work horses, counted into the parent when reaped)."""
        stats: dict[int, list[str]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stats[int(entry.name)] = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
        ours = {p.pid for p in self.procs}
        grew = True
        while grew:
            found = {pid for pid, f in stats.items() if int(f[1]) in ours} - ours
            grew, ours = bool(found), ours | found
        ticks = os.sysconf("SC_CLK_TCK")
        return sum(sum(int(v) for v in stats[pid][11:15]) / ticks for pid in ours if pid in stats)

    def cpu_used(self) -> float:
        return round(self.cpu_seconds() - self._cpu_at_start, 2)

    def __exit__(self, *exc) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                pass
            try:  # the whole group: a work horse or the scheduler left behind would take the next run's jobs
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(10)
        self.procs = []
