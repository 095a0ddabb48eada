"""Run scenario tests: each scenario on a throwaway database, with the clock frozen.

A ``ScenarioRunner`` migrates one SQLite template in a temporary folder; every scenario
gets a copy of it, its declared users, a fresh deployment of its process library and a
clock frozen at its start time. Steps go through the same ``ProcessEngine`` calls the web
and the workers use, so a scenario passes exactly when the real system would behave so.
The configured database is never touched. The clock is reset after every scenario.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from itertools import count
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from app.db import Database
from app.errors import HotlineError, InvalidInput
from app.migrate import upgrade
from app.models import Timer
from app.services import customers, identity

from . import ProcessEngine, clock, queries
from .scenario_files import (
    DEFAULT_TIMEZONE,
    Scenario,
    ScenarioStep,
    find_files,
    iso_duration,
    library_for,
    load_file,
)

TICK = timedelta(seconds=1)  # a timer fires once its moment has passed: one tick after it falls due
MAX_TIMER_ROUNDS = 10_000
PATH_EVENTS = ("step_completed", "task_completed")

__all__ = ["ScenarioResult", "ScenarioRunner", "run_paths"]


@dataclass
class ScenarioResult:
    file: str
    scenario: str
    passed: bool
    step: int | None = None  # the failing step: 0 is the start, then as numbered in the file
    where: str = ""  # that step in words, e.g. "step 3 (complete 'record_call' as li.na)"
    difference: str = ""
    expected: Any = None
    actual: Any = None
    history: list[dict] = field(default_factory=list)  # the instance's history up to the failure
    seconds: float = 0.0

    @property
    def id(self) -> str:
        return f"{self.file}::{self.scenario}"

    def line(self) -> str:
        if self.passed:
            return f"PASS {self.id}"
        return f"FAIL {self.id}: " + (f"{self.where}: " if self.where else "") + self.difference

    def to_dict(self) -> dict:
        return {"id": self.id, **asdict(self)}


class _Mismatch(Exception):
    def __init__(self, difference: str, expected: Any = None, actual: Any = None):
        super().__init__(difference)
        self.difference, self.expected, self.actual = difference, expected, actual


class _Refused(Exception):
    """A step the system refused, like a HotlineError (a `fails:` step may expect it)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ScenarioRunner:
    """Use as a context manager: the temporary folder and its template live as long as it does."""

    def __init__(self, forms_dir: Path | None):
        self.forms_dir = forms_dir
        self._folder: tempfile.TemporaryDirectory | None = None
        self._numbers = count(1)

    def __enter__(self) -> ScenarioRunner:
        self._folder = tempfile.TemporaryDirectory(prefix="hotline-scenarios-")
        db = Database(f"sqlite:///{self._template}")
        try:
            upgrade(db)
            with db.transaction() as s:
                identity.ensure_admin(s)
        finally:
            db.dispose()
        return self

    def __exit__(self, *_exc) -> None:
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None

    @property
    def _template(self) -> Path:
        if self._folder is None:
            raise RuntimeError("use ScenarioRunner in a with block")
        return Path(self._folder.name) / "template.db"

    def run(self, scenario: Scenario, library: Path | None) -> ScenarioResult:
        began = time.perf_counter()
        path = self._template.with_name(f"scenario-{next(self._numbers)}.db")
        shutil.copy(self._template, path)
        db = Database(f"sqlite:///{path}")
        run = _Run(ProcessEngine(db, self.forms_dir), scenario)
        try:
            clock.freeze(scenario.start_at)
            result = run.execute(library)
        finally:
            clock.reset()
            db.dispose()
            path.unlink(missing_ok=True)
        result.seconds = round(time.perf_counter() - began, 3)
        return result


def run_paths(path: str | Path, forms_dir: Path | None, library: Path | None = None,
              timezone: str = DEFAULT_TIMEZONE) -> list[ScenarioResult]:
    """Every scenario of every ``*.scenario.yaml`` under ``path``; an invalid file is one failed result."""
    results = []
    with ScenarioRunner(forms_dir) as runner:
        for file in find_files(path):
            try:
                scenarios = load_file(file, timezone)
            except InvalidInput as exc:
                results.append(invalid_file_result(file, exc))
                continue
            results.extend(runner.run(s, library or library_for(file)) for s in scenarios)
    return results


def invalid_file_result(file: Path, exc: InvalidInput) -> ScenarioResult:
    problems = exc.detail.get("problems") or [exc.message]
    return ScenarioResult(display_name(file), "(invalid file)", False,
                          difference="; ".join(p.removeprefix(f"{file}: ") for p in problems), actual=problems)


def display_name(file: Path) -> str:
    try:
        return str(file.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(file)


class _Run:
    """One scenario on one database: the steps in order, stopping at the first that fails."""

    def __init__(self, engine: ProcessEngine, scenario: Scenario):
        self.engine, self.scenario = engine, scenario
        self.instance_id: int | None = None

    def execute(self, library: Path | None) -> ScenarioResult:
        s = self.scenario
        result = ScenarioResult(display_name(s.file), s.name, True)
        try:
            self._prepare(library)
        except (HotlineError, _Mismatch) as exc:
            return self._failed(result, s.start, _Mismatch(getattr(exc, "message", str(exc))))
        for step in [s.start, *s.steps, *([s.end] if s.end else [])]:
            try:
                self._do(step)
            except _Mismatch as exc:
                return self._failed(result, step, exc)
        return result

    def _prepare(self, library: Path | None) -> None:
        if library is None:
            raise _Mismatch("no process library: no folder at or above the scenario file holds .bpmn files")
        with self.engine.db.transaction() as s:
            for name, groups in self.scenario.users.items():
                identity.ensure_user(s, name, groups=groups)
            for n, customer in enumerate(self.scenario.given.get("customers", []), 1):
                try:
                    customers.register(str(customer["phone"]), customer.get("name") or "",
                                       customer.get("language") or "zh", _session=s)
                except (ValueError, HotlineError) as exc:
                    raise _Mismatch(f"given customer {n}: {getattr(exc, 'message', exc)}") from exc
        self.engine.deploy([library])

    def _failed(self, result: ScenarioResult, step: ScenarioStep, exc: _Mismatch) -> ScenarioResult:
        result.passed, result.step = False, step.number
        result.where = "end" if step.action == "end" else \
            f"{'start' if step.action == 'start' else f'step {step.number}'} ({step.describe()})"
        result.difference, result.expected, result.actual = exc.difference, exc.expected, exc.actual
        if self.instance_id is not None:
            result.history = self.engine.instance_detail(self.instance_id)["history"]
        return result

    def _do(self, step: ScenarioStep) -> None:
        if step.action in ("expect", "end"):
            self._check(step.target)
            return
        try:
            getattr(self, f"_{step.action}")(step)
            self.engine.run_due_async_tasks()  # asynchronous service tasks run at once, as an idle worker would
        except (HotlineError, _Refused) as exc:
            if step.fails is None:
                raise _Mismatch(f"failed: {exc.message}", "the step succeeds", exc.message) from exc
            if step.fails.lower() not in exc.message.lower():
                raise _Mismatch(f"failed, but not with '{step.fails}': {exc.message}",
                                f"fails with '{step.fails}'", exc.message) from exc
            return
        if step.fails is not None:
            raise _Mismatch(f"succeeded, but should have failed with '{step.fails}'",
                            f"fails with '{step.fails}'", "succeeded")

    # --- actions -----------------------------------------------------------------------------

    def _start(self, step: ScenarioStep) -> None:
        if not step.by_message:
            self.instance_id = self.engine.start(step.target, step.data, step.actor)
            return
        result = self.engine.correlate(step.target, step.keys, step.data, step.actor)
        _refuse_failures(result.failed)
        if not result.started:
            raise _Refused(f"message '{step.target}' started no process: no deployed process starts on it")
        self.instance_id = result.started[0]

    def _open_task(self, ref: str, actor: str | None = None) -> dict:
        """The oldest open task named ``ref``; of several (a multi-instance task), the oldest
        ``actor`` may work on, so a scenario can answer them in any order."""
        if self.instance_id is None:
            raise _Refused("no process instance was started")
        with self.engine.db.transaction() as s:
            rows = sorted(queries.tasks(s, instance_id=self.instance_id), key=lambda t: t["id"])
            matches = [t for t in rows if ref in (t["element_id"], t["title"])]
            if len(matches) > 1 and actor and identity.find_user(s, actor) is not None:
                theirs = {t["id"] for t in queries.tasks(s, instance_id=self.instance_id, user=actor)}
                matches = [t for t in matches if t["id"] in theirs] or matches
        if not matches:
            raise _Refused(f"no open task '{ref}'; open: {_names([t['element_id'] for t in rows])}")
        return matches[0]

    def _complete(self, step: ScenarioStep) -> None:
        self.engine.complete(self._open_task(step.target, step.actor)["id"], step.actor, step.data)

    def _claim(self, step: ScenarioStep) -> None:
        self.engine.claim(self._open_task(step.target, step.actor)["id"], step.actor)

    def _message(self, step: ScenarioStep) -> None:
        result = self.engine.correlate(step.target, step.keys, step.data, step.actor)
        _refuse_failures(result.failed)
        if self.instance_id is None and result.started:
            self.instance_id = result.started[0]
        elif self.instance_id not in result.delivered and not result.started:
            elsewhere = " (it went to another process instance)" if result.delivered else "; it was kept for later"
            raise _Refused(f"this process was not waiting for message '{step.target}' with these keys{elsewhere}")

    def _advance(self, step: ScenarioStep) -> None:
        """Move the clock, stopping at every timer due on the way, so each fires at its own time."""
        target = clock.now() + timedelta(seconds=step.target)
        failed: list[dict] = []
        for _ in range(MAX_TIMER_ROUNDS):
            with self.engine.db.transaction() as s:
                due = s.scalar(select(func.min(Timer.due_at)).where(Timer.due_at >= clock.now(),
                                                                     Timer.due_at <= target))
            if due is None:
                break
            clock.freeze(max(due + TICK, clock.now()))
            failed += self.engine.fire_due_timers()["failed"]
        else:
            raise _Refused(f"timers kept falling due: stopped after {MAX_TIMER_ROUNDS} firings")
        clock.freeze(max(target, clock.now()))
        failed += self.engine.fire_due_timers()["failed"]
        _refuse_failures(failed)

    # --- expectations -----------------------------------------------------------------------

    def _check(self, checks: dict[str, Any]) -> None:
        if self.instance_id is None:
            raise _Mismatch("no process instance was started", checks, None)
        detail = self.engine.instance_detail(self.instance_id)
        differences, expected, actual = [], {}, {}
        for key, want in checks.items():
            got, found = _CHECKS[key](want, detail)
            if found:
                differences += found
                expected[key], actual[key] = want, got
        if differences:
            raise _Mismatch("; ".join(differences), expected, actual)


def _refuse_failures(failed: list[dict]) -> None:
    if failed:
        raise _Refused("; ".join(f["error"] for f in failed))


def _check_status(want: str, detail: dict) -> tuple[Any, list[str]]:
    got = detail["status"]
    return got, [] if got == want else [f"status: expected {want}, got {got}"]


def _check_data(want: dict, detail: dict) -> tuple[Any, list[str]]:
    data, found = detail["data"], []
    for key, value in want.items():
        if key not in data:
            found.append(f"data.{key}: expected {_show(value)}, but it is not set")
        elif not _same(value, data[key]):
            found.append(f"data.{key}: expected {_show(value)}, got {_show(data[key])}")
    return {k: data.get(k) for k in want}, found


def _check_path(want: list[str], detail: dict) -> tuple[Any, list[str]]:
    got = [e["element_id"] for e in detail["history"] if e["kind"] in PATH_EVENTS and e["element_id"]]
    if got == want:
        return got, []
    at = next((i for i, (a, b) in enumerate(zip(want, got, strict=False)) if a != b), min(len(want), len(got)))
    return got, [f"path: expected {_names(want)}, got {_names(got)} (they differ at position {at + 1})"]


def _check_tasks(want: list[dict], detail: dict) -> tuple[Any, list[str]]:
    rows = sorted(detail["tasks"], key=lambda t: t["id"])
    remaining, missing, found = list(rows), [], []
    for w in want:
        match = next((t for t in remaining if w.get("task") in (t["element_id"], t["title"])), None)
        if match is None:
            missing.append(w)
            continue
        remaining.remove(match)
        found += _task_differences(w, match)
    if missing or remaining:
        found.insert(0, f"open tasks: expected {_names([w.get('task') for w in want])}, "
                        f"got {_names([t['element_id'] for t in rows])}")
    return [_task_view(t) for t in rows], found


def _task_differences(want: dict, task: dict) -> list[str]:
    """Each detail of an open task that is not as expected, named by its key in the scenario file."""
    name, found = want["task"], []
    if "groups" in want and sorted(want["groups"]) != sorted(task["candidate_groups"]):
        found.append(f"task {name}: groups expected {_names(want['groups'])}, got {_names(task['candidate_groups'])}")
    if "assignee" in want and want["assignee"] != task["assignee"]:
        found.append(f"task {name}: assignee expected {want['assignee'] or 'nobody'}, "
                     f"got {task['assignee'] or 'nobody'}")
    for key, got in (("due_in", _due_in(task)), ("due_from_now", _due_from_now(task))):
        if key in want and _due_differs(want[key], got):
            found.append(f"task {name}: {key} expected {_show_due(want[key])}, got {_show_due(got)}")
    for key in ("priority", "escalation_level"):
        if key in want and want[key] != task[key]:
            found.append(f"task {name}: {key} expected {want[key]}, got {task[key]}")
    if "overdue" in want and want["overdue"] is not task["overdue"]:
        found.append(f"task {name}: overdue expected {_show(want['overdue'])}, got {_show(task['overdue'])}")
    return found


def _due_in(task: dict) -> float | None:
    """Seconds from the task's creation to its due time."""
    if not task["due_at"]:
        return None
    return (datetime.fromisoformat(task["due_at"]) - datetime.fromisoformat(task["created_at"])).total_seconds()


def _due_from_now(task: dict) -> float | None:
    """Seconds from the scenario's clock to the task's due time (negative once it has passed)."""
    if not task["due_at"]:
        return None
    due = datetime.fromisoformat(task["due_at"])
    return (due if due.tzinfo else due.replace(tzinfo=UTC)).timestamp() - clock.now().timestamp()


def _due_differs(want: float | None, got: float | None) -> bool:
    if want is None or got is None:
        return want is not got
    return abs(want - got) >= 0.5


def _show_due(seconds: float | None) -> str:
    return "no due date" if seconds is None else iso_duration(seconds)


def _task_view(task: dict) -> dict:
    due_in, due_from_now = _due_in(task), _due_from_now(task)
    return {"task": task["element_id"], "title": task["title"], "groups": task["candidate_groups"],
            "assignee": task["assignee"], "due_in": _show_due(due_in) if due_in is not None else None,
            "due_from_now": _show_due(due_from_now) if due_from_now is not None else None,
            "priority": task["priority"], "overdue": task["overdue"], "escalation_level": task["escalation_level"]}


def _check_incidents(want: list[dict], detail: dict) -> tuple[Any, list[str]]:
    rows = [i for i in detail["incidents"] if i["status"] == "open"]
    got = [{"element": i["element_id"], "error": i["error"]} for i in rows]
    if sorted(str(w["element"]) for w in want) != sorted(str(g["element"]) for g in got):
        return got, [f"open incidents: expected {_names([w['element'] for w in want])}, "
                     f"got {_names([g['element'] for g in got])}"]
    found = []
    for w in want:
        errors = [g["error"] for g in got if g["element"] == w["element"]]
        if w.get("error") and not any(w["error"].lower() in e.lower() for e in errors):
            found.append(f"incident at {w['element']}: expected an error containing '{w['error']}', "
                         f"got {_show(errors[0] if len(errors) == 1 else errors)}")
    return got, found


def _check_messages_sent(want: list[dict], detail: dict) -> tuple[Any, list[str]]:
    """Every wanted message was thrown (recorded, not delivered, in a scenario), with at least
    the payload and keys given; each sent message counts for one wanted."""
    sent = [{"message": e["detail"].get("message"), "payload": e["detail"].get("payload") or {},
             "keys": e["detail"].get("keys") or {}} for e in detail["history"] if e["kind"] == "message_sent"]
    remaining, found = list(sent), []
    for w in want:
        named = [m for m in remaining if m["message"] == w["message"]]
        fits = [m for m in named if not _part_differences(w, m)]
        if fits:
            remaining.remove(fits[0])
        elif named:
            found.append(f"message {w['message']}: " + "; ".join(_part_differences(w, named[0])))
        else:
            found.append(f"messages sent: expected {w['message']}, but it was not sent "
                         f"(sent: {_names([m['message'] for m in sent])})")
    return sent, found


def _part_differences(want: dict, message: dict) -> list[str]:
    found = []
    for part in ("payload", "keys"):
        for key, value in (want.get(part) or {}).items():
            if key not in message[part]:
                found.append(f"{part}.{key}: expected {_show(value)}, but it is not in the message")
            elif not _same(value, message[part][key]):
                found.append(f"{part}.{key}: expected {_show(value)}, got {_show(message[part][key])}")
    return found


_CHECKS = {"status": _check_status, "data": _check_data, "path": _check_path, "tasks": _check_tasks,
           "incidents": _check_incidents, "messages_sent": _check_messages_sent}


def _same(want: Any, got: Any) -> bool:
    """Equal as a designer means it: 12.5 matches the stored money text "12.50"."""
    if isinstance(want, bool) or isinstance(got, bool):
        return want is got
    if want == got:
        return True
    if isinstance(want, (int, float)) and isinstance(got, str):
        try:
            return Decimal(str(want)) == Decimal(str(got))
        except InvalidOperation:
            return False
    return False


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _names(items: list) -> str:
    return "[" + ", ".join(str(i) for i in items) + "]"
