"""Timing loops shared by the figures and the profile, and what the run records about itself."""
from __future__ import annotations

import gc
import hashlib
import os
import platform
import statistics
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from time import perf_counter

from app.engine import spiff_limits
from app.errors import StepFailed

from .drivers import HERE


@dataclass
class Rate:
    rate: float  # operations per second, median over rounds
    latency: float  # seconds per operation, median over operations
    n: int
    rounds: int
    rates: list[float] = field(default_factory=list)


def _chunks(n: int, rounds: int) -> list[int]:
    base, extra = divmod(n, rounds)
    return [size for i in range(rounds) if (size := base + (1 if i < extra else 0))]


def measure(op, items: list, rounds: int) -> tuple[Rate, list]:
    """Time ``op(item)`` for every item, in rounds; returns the rate and the results."""
    results, latencies, rates = [], [], []
    it = iter(items)
    for size in _chunks(len(items), rounds):
        spent = 0.0
        for _ in range(size):
            item = next(it)
            t0 = perf_counter()
            result = op(item)
            dt = perf_counter() - t0
            spent += dt
            latencies.append(dt)
            results.append(result)
        rates.append(size / spent)
    return Rate(statistics.median(rates), statistics.median(latencies), len(items), len(rates), rates), results


def warm_up(d, n: int) -> None:
    instances = [d.start() for _ in range(n)]
    for task in d.open_tasks(instances):
        d.complete(task, 1)


def measure_starts(d, n: int, rounds: int) -> tuple[Rate, list]:
    return measure(lambda _: d.start(), list(range(n)), rounds)


def measure_completions(d, instances: list, rounds: int) -> Rate:
    """Complete the open user task of each (fresh) instance once."""
    rate, _ = measure(lambda task: d.complete(task, 1), d.open_tasks(instances), rounds)
    return rate


@dataclass
class Point:
    n: int  # completions the instance had before the first timed one
    latency: float  # median seconds per completion
    samples: list[float]
    state_bytes: int | None
    serde: tuple[float, float, float] | None = None  # state.load, first dump, later dump, alone


@dataclass
class Growth:
    points: list[Point]
    seconds: float  # the whole run, untimed ramp included
    instance: object = None
    done: int = 0  # completions the instance has had
    stopped: str | None = None  # why the run ended early: a stall


def growth(ramp, timed_by, checkpoints: list[int], timed: int, between=None) -> Growth:
    """Drive one instance through ``checkpoints`` with ``ramp``; at each, ``timed_by``
    completes the next ``timed`` user tasks, one at a time, timed.

    ``ramp`` and ``timed_by`` are the same driver, or for Hotline cold the cached engine
    ramps (fast) and the uncached one is timed: the instance was last run elsewhere. With
    ``between``, that driver completes one task (untimed) before each timed one: for Hotline
    "turns", two cached engines take turns, so ``timed_by`` always finds its kept workflow
    outdated by the other's step.
    """
    t_begin = perf_counter()
    result = Growth([], 0.0, ramp.start())
    task = ramp.open_task(result.instance)

    def step(d) -> float:
        nonlocal task
        if task is None:
            raise _Stalled(f"no user task is ready after {result.done} completions")
        t0 = perf_counter()
        d.complete(task, result.done + 1)
        dt = perf_counter() - t0
        result.done += 1
        task = d.open_task(result.instance)
        return dt

    try:
        for cp in checkpoints:
            while result.done < cp:
                step(ramp)
            size = timed_by.state_size(result.instance)
            samples = []
            for _ in range(timed):
                if between is not None:
                    step(between)
                samples.append(step(timed_by))
            serde = timed_by.serde_seconds(result.instance) if hasattr(timed_by, "serde_seconds") else None
            result.points.append(Point(cp, statistics.median(samples), samples, size, serde))
    except (_Stalled, StepFailed) as exc:
        result.stopped = f"{type(exc).__name__}: {exc}"
        print(f"  {timed_by.label}: growth run stopped: {result.stopped}", flush=True)
    result.seconds = perf_counter() - t_begin
    return result


class _Stalled(Exception):
    pass


def stall_check(d, rounds: int, run: Growth | None = None) -> dict:
    """Does a loop instance get past ``rounds`` rounds, still waiting for its next user task?

    Continues the growth run's instance when there is one (it usually is past ``rounds``
    already), else drives a new one. ``ok`` is False on a stall, a StepFailed, an instance
    not in status waiting or with an open incident.
    """
    if run is None or run.stopped:
        if run is not None:
            return {"ok": False, "rounds": run.done, "why": run.stopped}
        run = Growth([], 0.0, d.start())
    task = d.open_task(run.instance)
    try:
        while task is not None and run.done < rounds + 1:
            d.complete(task, run.done + 1)
            run.done += 1
            task = d.open_task(run.instance)
    except StepFailed as exc:
        return {"ok": False, "rounds": run.done, "why": f"StepFailed: {exc}", **d.health(run.instance)}
    found = {"rounds": run.done, "user task ready": task is not None, **d.health(run.instance)}
    found["ok"] = (run.done > rounds and task is not None and found.get("status", "waiting") == "waiting"
                   and not found.get("open incidents"))
    return found


# --- what the run records about itself -----------------------------------------

def code_version() -> str:
    """HEAD, whether app/ has uncommitted changes, and a hash of app/engine as measured."""
    root = HERE.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "app"], cwd=root, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        head, dirty = "?", ""
    h = hashlib.sha256()
    for path in sorted((root / "app" / "engine").glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return f"{head}{' + uncommitted changes in app/' if dirty else ''} (app/engine sha256 {h.hexdigest()[:12]})"


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def machine() -> dict:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "platform": platform.platform(), "spiffworkflow": version("SpiffWorkflow"),
            "sqlalchemy": version("SQLAlchemy"), "psycopg": version("psycopg"),
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "code": code_version(),
            "gc": f"threshold {gc.get_threshold()}, {gc.get_freeze_count():,} objects frozen",
            "spiff max_depth": f"{spiff_limits.max_depth():,} (lifted by app.engine.spiff_limits at import)",
            "load average at start": load_average()}


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"
