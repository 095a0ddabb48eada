"""Timer start events: read them from a diagram, work out when they fall due, start past them.

A timer start event's expression is Python, like every timer expression in Hotline
(``"R/P1D"`` with quotes, or a helper call); it is evaluated once, at deploy, with no
process data. What it may evaluate to:

- timeCycle: an ISO 8601 repeating interval ``R[n]/[start/]duration`` or ``R[n]/duration/end``
  (``R/PT24H``: every 24 hours from deploy; ``R3/2026-01-05T02:00:00+08:00/P1D``: three
  daily runs from that moment). Without a start the first run is one period after deploy,
  as SpiffWorkflow does.
- timeDate: one run at that moment (ISO 8601 date-time, naive ones are read as UTC).
- timeDuration: one run that long after deploy.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from lxml import etree
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState

from app.errors import IllegalState
from app.models.schedule import ScheduleKind

from .compile import parse_xml
from .diagram import NS
from .scripting import SCRIPT_ENGINE
from .timing import timer_definition

_TAGS = {"timeCycle": ScheduleKind.CYCLE, "timeDate": ScheduleKind.DATE, "timeDuration": ScheduleKind.DURATION}
# Catching up a long outage of a per-minute cycle must not loop for ever.
_MAX_STEPS = 100_000


@dataclass(frozen=True)
class TimerStart:
    element_id: str
    kind: str  # ScheduleKind
    expression: str


@dataclass(frozen=True)
class Plan:
    """When a timer start falls due first, how often it repeats and how many times."""

    timer: str  # the evaluated ISO 8601 text
    first_due: datetime
    period: str | None  # ISO 8601 duration between runs (cycles only)
    remaining: int | None  # None: for ever


class BadTimer(ValueError):
    """A timer start's expression does not give a usable time; the message says why."""


def timer_starts(bpmn_text: str, process_id: str) -> list[TimerStart]:
    """The timer start events of a process (top level, not those of event subprocesses)."""
    try:
        root = parse_xml(bpmn_text, "process")
    except etree.XMLSyntaxError:
        return []
    found = []
    for process in root.iterfind("bpmn:process", NS):
        if process.get("id") != process_id:
            continue
        for start in process.iterfind("bpmn:startEvent", NS):
            for definition in start.iterfind("bpmn:timerEventDefinition", NS):
                for tag, kind in _TAGS.items():
                    node = definition.find(f"bpmn:{tag}", NS)
                    if node is not None:
                        found.append(TimerStart(start.get("id"), kind, (node.text or "").strip()))
    return found


def _evaluate(expression: str) -> str:
    if not expression:
        raise BadTimer("the timer has no expression")
    try:
        value = SCRIPT_ENGINE.environment.evaluate(expression, {})
    except Exception as exc:  # noqa: BLE001 - any error in the author's expression is reported as such
        raise BadTimer(f"the expression {expression!r} could not be evaluated ({type(exc).__name__}: {exc}); "
                       'timer expressions are Python, e.g. "R/P1D" with quotes') from exc
    if isinstance(value, datetime):
        value = value.isoformat()
    if not isinstance(value, str):
        raise BadTimer(f"the expression {expression!r} gave {type(value).__name__}, not ISO 8601 text")
    return value.strip()


def duration_after(period: str, start: datetime) -> timedelta:
    """How long ``period`` (ISO 8601 duration) lasts from ``start`` (months and years vary)."""
    return TimerEventDefinition.get_timedelta_from_start(TimerEventDefinition.parse_iso_duration(period), start)


def _aware(value: datetime) -> datetime:
    return (value.replace(tzinfo=UTC) if value.tzinfo is None else value).astimezone(UTC)


def _datetime(text: str) -> datetime:
    try:
        return _aware(datetime.fromisoformat(text))
    except ValueError as exc:
        raise BadTimer(f"{text!r} is not an ISO 8601 date-time") from exc


def _period(text: str) -> str:
    try:
        TimerEventDefinition.parse_iso_duration(text)
    except Exception as exc:  # noqa: BLE001 - SpiffWorkflow raises a bare Exception
        raise BadTimer(f"{text!r} is not an ISO 8601 duration (like P1D or PT4H)") from exc
    if duration_after(text, datetime(2000, 1, 1, tzinfo=UTC)) <= timedelta(0):
        raise BadTimer(f"the duration {text!r} is not longer than zero")
    return text.upper()


def _cycle(text: str, now: datetime) -> tuple[datetime, str, int | None]:
    parts = text.split("/")
    if len(parts) not in (2, 3) or not parts[0].upper().startswith("R"):
        raise BadTimer("it must be R, the number of repetitions (none: for ever), then /start/duration, "
                       "/duration or /duration/end")
    count = parts[0][1:]
    if count and not count.isdigit():
        raise BadTimer("the repetitions after R must be a whole number")
    repetitions = int(count) if count else None
    if repetitions == 0:
        raise BadTimer("it repeats zero times")
    rest = parts[1:]
    if len(rest) == 1:
        period = _period(rest[0])
        return now + duration_after(period, now), period, repetitions
    first, second = rest
    if first.upper().startswith("P"):  # duration/end: the first run one period before the end, as SpiffWorkflow
        period, end = _period(first), _datetime(second)
        before = TimerEventDefinition.get_timedelta_from_end(TimerEventDefinition.parse_iso_duration(period), end)
        return end - before, period, repetitions
    return _datetime(first), _period(second), repetitions


def plan(start: TimerStart, now: datetime) -> Plan:
    """Evaluate a timer start; raises ``BadTimer`` naming what is wrong."""
    timer = _evaluate(start.expression)
    if start.kind == ScheduleKind.CYCLE:
        try:
            first, period, remaining = _cycle(timer, now)
        except BadTimer as exc:
            raise BadTimer(f"{timer!r} is not a usable ISO 8601 repeating interval (like R/P1D, R3/PT4H or "
                           f"R/2026-01-05T02:00:00+08:00/P1D): {exc}") from exc
        return Plan(timer, first, period, remaining)
    if start.kind == ScheduleKind.DATE:
        return Plan(timer, _datetime(timer), None, 1)
    return Plan(timer, now + duration_after(_period(timer), now), None, 1)


def next_slot(due: datetime, period: str, now: datetime) -> tuple[datetime, int]:
    """The first slot of a cycle after ``now``, counting on from ``due``; and how many slots were
    passed over on the way (runs missed while no worker ran: catching up starts one run, not one per slot)."""
    nxt, skipped = due + duration_after(period, due), 0
    if nxt > now:
        return nxt, 0
    step = duration_after(period, nxt)
    fixed = not any(c in period.upper().split("T")[0] for c in "YM")  # no months or years: a fixed length
    if fixed:
        behind = (now - nxt) // step + 1
        return nxt + behind * step, int(behind)
    while nxt <= now and skipped < _MAX_STEPS:
        nxt, skipped = nxt + duration_after(period, nxt), skipped + 1
    return nxt, skipped


def _is_timer_start(spec) -> bool:
    return isinstance(spec, StartEvent) and timer_definition(getattr(spec, "event_definition", None)) is not None


def fire_timer_start(workflow: BpmnWorkflow, element_id: str | None = None, *, by_default: bool = True) -> str | None:
    """Make a new workflow start as if its timer start event ``element_id`` had fired now.

    ``element_id`` None and ``by_default``: when every start event of the process is a timer
    start (started by hand, or an incident retried), the first one fires. Every other timer
    start event is cancelled, so an instance never waits at a timer start event: schedules,
    not instances, decide when the next run starts. Returns the element that fired, if any.
    """
    starts = [t for t in workflow.get_tasks(state=TaskState.NOT_FINISHED_MASK) if isinstance(t.task_spec, StartEvent)]
    timed = [t for t in starts if _is_timer_start(t.task_spec)]
    if element_id is None and by_default and timed and len(timed) == len(starts):
        element_id = timed[0].task_spec.bpmn_id
    chosen = [t for t in timed if t.task_spec.bpmn_id == element_id]
    if element_id is not None and not chosen:
        raise IllegalState(f"the process has no timer start event '{element_id}'")
    for task in timed:
        if task in chosen:
            task._set_internal_data(event_fired=True)
            if task.has_state(TaskState.PREDICTED_MASK):  # one of several start events: only predicted so far
                task._set_state(TaskState.FUTURE)
            if not task.children:  # a cycle adds its outgoing path only when it fires (see CycleTimerEventDefinition)
                for output in task.task_spec.outputs:
                    child = task._add_child(output, TaskState.FUTURE)
                    child.task_spec._predict(child, mask=TaskState.NOT_FINISHED_MASK)
        else:
            task.cancel()
    return element_id
