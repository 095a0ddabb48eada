"""Scenario files (``*.scenario.yaml``): read and check them before anything runs.

The format is written for process designers (see bpmn/README.md, "Testing a process with
scenarios"). Every problem names the file, the scenario and the step, and all problems of
a file are reported at once, as the library validation does for diagrams.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from app.errors import InvalidInput
from app.models import InstanceStatus

SUFFIX = ".scenario.yaml"
DEFAULT_TIMEZONE = "Asia/Shanghai"
DEFAULT_START = datetime(2026, 1, 5, 9, 0)  # a Monday, 09:00 in the hotline's time zone
ADMIN = "admin"  # acts when a step names nobody; may do anything
SYSTEM = "system"  # sends messages when a step names nobody, as the telephony worker does

FILE_KEYS = {"process", "users", "scenarios"}
SCENARIO_KEYS = {"name", "description", "start_at", "users", "given", "start", "steps", "end"}
GIVEN_KEYS = {"customers"}  # domain data in place before the start
CUSTOMER_KEYS = {"name", "phone", "language"}
START_KEYS = {"process", "as", "data", "message", "keys", "payload", "fails"}
ACTIONS = {  # action key: the other keys its step may have
    "complete": {"as", "with", "fails"},
    "claim": {"as", "fails"},
    "advance": {"fails"},
    "message": {"as", "keys", "payload", "fails"},
    "expect": set(),
}
EXPECT_KEYS = {"tasks", "status", "data", "path", "incidents", "messages_sent"}
MESSAGE_SENT_KEYS = {"message", "payload", "keys"}  # thrown messages are recorded, not delivered
TASK_KEYS = {"task", "groups", "assignee", "due_in", "due_from_now", "priority", "overdue", "escalation_level"}
# names a designer may reach for (from the task API or the inbox), and the key this format uses
KEY_ALIASES = {"candidate_groups": "groups", "group": "groups", "assigned_to": "assignee", "due": "due_in",
               "due_at": "due_from_now", "due_now": "due_from_now", "level": "escalation_level",
               "escalation": "escalation_level", "late": "overdue", "title": "task", "element": "task"}
INCIDENT_KEYS = {"element", "error"}
_DURATION = re.compile(r"^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")
_USERNAME = re.compile(r"^[A-Za-z0-9._-]+$")


@dataclass(frozen=True)
class ScenarioStep:
    number: int  # 0 is the start, then 1, 2, ... as written
    action: str  # start, complete, claim, advance, message, expect, end
    target: Any = None  # task, message name or process key; seconds for advance; the checks for expect/end
    actor: str = ADMIN
    data: dict = field(default_factory=dict)  # form answers, start data or message payload
    keys: dict = field(default_factory=dict)  # message correlation keys
    fails: str | None = None  # the step must fail with an error containing this
    by_message: bool = False  # a start by message: ``target`` is the message name

    @property
    def where(self) -> str:
        if self.action in ("start", "end"):
            return self.action
        return f"step {self.number} ({self.action})"

    def describe(self) -> str:
        if self.action == "advance":
            return f"advance {iso_duration(self.target)}"
        if self.action in ("expect", "end"):
            return self.action
        by = f" as {self.actor}" if self.actor not in (ADMIN, SYSTEM) else ""
        if self.action == "start":
            return (f"start by message '{self.target}'" if self.by_message else f"start {self.target}") + by
        return f"{self.action} '{self.target}'{by}"


@dataclass(frozen=True)
class Scenario:
    file: Path
    name: str
    users: dict[str, list[str]]
    start_at: datetime
    start: ScenarioStep
    steps: list[ScenarioStep]
    end: ScenarioStep | None
    given: dict = field(default_factory=dict)  # {"customers": [{name, phone, language}]}


class _Loader(yaml.SafeLoader):
    """Safe YAML where dates stay text (as in process data) and a key given twice is an error."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.MarkedYAMLError("while reading a mapping", node.start_mark,
                                           f"the key '{key}' appears twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def find_files(path: str | Path) -> list[Path]:
    path = Path(path)
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob(f"*{SUFFIX}") if p.is_file())


def library_for(file: Path) -> Path | None:
    """The process library a scenario file tests: the nearest folder at or above it holding .bpmn files."""
    for folder in file.resolve().parents:
        if any(folder.glob("*.bpmn")):
            return folder
    return None


def parse_duration(text: Any) -> float | None:
    """Seconds in an ISO 8601 duration of weeks, days, hours, minutes, seconds (P2D, PT4H30M)."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if match is None or text in ("P", "PT") or text.endswith("T"):
        return None
    w, d, h, m, s = (float(g or 0) for g in match.groups())
    return timedelta(weeks=w, days=d, hours=h, minutes=m, seconds=s).total_seconds()


def parse_signed_duration(text: Any) -> float | None:
    """A duration that may lie in the past: PT15M ahead, -PT1S one second ago."""
    if isinstance(text, str) and text.startswith("-"):
        seconds = parse_duration(text[1:])
        return -seconds if seconds is not None else None
    return parse_duration(text)


def iso_duration(seconds: float) -> str:
    """PT15M, P1DT2H: how a designer writes a duration (-PT1S: one second ago)."""
    if seconds < 0:
        return "-" + iso_duration(-seconds)
    rest = int(round(seconds))
    days, rest = divmod(rest, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    time_part = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M"), (secs, "S")) if n)
    text = "P" + (f"{days}D" if days else "") + (f"T{time_part}" if time_part else "")
    return text if text != "P" else "PT0S"


class _Problems:
    def __init__(self, file: Path):
        self.file, self.items = file, []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{self.file}: {where}: {message}" if where else f"{self.file}: {message}")

    def keys(self, where: str, value: Any, allowed: set[str], what: str = "") -> bool:
        """Is ``value`` a mapping with only ``allowed`` keys? Reports each unknown key."""
        if not isinstance(value, dict):
            self.add(where, f"{what or 'this'} must be a mapping (key: value), not {_kind(value)}")
            return False
        for key in value:
            if key not in allowed:
                inside = f" in {what}" if what else ""
                hint = _did_you_mean(key, allowed)
                self.add(where, f"unknown key '{key}'{inside}{hint} (allowed: {', '.join(sorted(allowed))})")
        return True

    def mapping(self, where: str, value: Any, what: str) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.add(where, f"'{what}' must be a mapping (key: value), not {_kind(value)}")
            return {}
        return value

    def text(self, where: str, value: Any, what: str) -> str | None:
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
            return str(value)
        self.add(where, f"'{what}' must be a name or text, not {_kind(value)}")
        return None


def _did_you_mean(key: Any, allowed: set[str]) -> str:
    """``: did you mean 'groups'?`` for a misspelt or a differently named key, else nothing."""
    if not isinstance(key, str):
        return ""
    alias = KEY_ALIASES.get(key.lower())
    close = [alias] if alias in allowed else difflib.get_close_matches(key.lower(), sorted(allowed), n=1, cutoff=0.75)
    return f": did you mean '{close[0]}'?" if close else ""


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", type(None): "empty"}.get(type(value), repr(value))


def load_file(path: str | Path, timezone: str = DEFAULT_TIMEZONE) -> list[Scenario]:
    """The scenarios of one file; ``InvalidInput`` (with every problem under ``problems``) if it is not valid."""
    path = Path(path)
    problems = _Problems(path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: cannot read: {exc}", problems=[f"{path}: cannot read: {exc}"]) from exc
    except yaml.YAMLError as exc:
        message = f"{path}: not valid YAML: {' '.join(str(exc).split())}"
        raise InvalidInput(message, problems=[message]) from exc
    scenarios: list[Scenario] = []
    if problems.keys("", raw, FILE_KEYS, "the file"):
        default_process = raw.get("process", path.name.removesuffix(SUFFIX))
        problems.text("", default_process, "process")
        users = _users(problems, "", raw.get("users"))
        items = raw.get("scenarios")
        if not isinstance(items, list) or not items:
            problems.add("", "'scenarios' must be a list with at least one scenario")
            items = []
        names: set[str] = set()
        for n, item in enumerate(items, 1):
            scenario = _scenario(problems, path, n, item, str(default_process), users, ZoneInfo(timezone), names)
            if scenario is not None:
                scenarios.append(scenario)
    if problems.items:
        more = f" (and {len(problems.items) - 1} more)" if len(problems.items) > 1 else ""
        raise InvalidInput(problems.items[0] + more, problems=problems.items)
    return scenarios


def _users(problems: _Problems, where: str, raw: Any) -> dict[str, list[str]]:
    users = {}
    for name, groups in problems.mapping(where, raw, "users").items():
        if not isinstance(name, str) or not _USERNAME.match(name):
            problems.add(where, f"user name {name!r} may use letters, digits, '.', '_' and '-' only")
            continue
        groups = [groups] if isinstance(groups, str) else groups if groups is not None else []
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            problems.add(where, f"the groups of user '{name}' must be a list of group names")
            continue
        users[name] = groups
    return users


def _scenario(problems: _Problems, path: Path, n: int, raw: Any, process: str, file_users: dict,
              zone: ZoneInfo, names: set[str]) -> Scenario | None:
    name = raw.get("name") if isinstance(raw, dict) else None
    where = f"scenario '{name}'" if isinstance(name, str) and name.strip() else f"scenario {n}"
    if not problems.keys(where, raw, SCENARIO_KEYS, "the scenario"):
        return None
    if not isinstance(name, str) or not name.strip():
        problems.add(where, "needs a 'name'")
    elif name in names:
        problems.add(where, "another scenario in this file has the same name")
    names.add(name)
    users = {**file_users, **_users(problems, where, raw.get("users"))}
    start_at = _start_at(problems, where, raw.get("start_at"), zone)
    given = _given(problems, f"{where}, given", raw.get("given"))
    ctx = _StepContext(problems, where, set(users) | {ADMIN})
    start = ctx.start(raw.get("start"), process)
    items = raw.get("steps", [])
    if not isinstance(items, list):
        problems.add(where, f"'steps' must be a list, not {_kind(items)}")
        items = []
    steps = [ctx.step(k, item) for k, item in enumerate(items, 1)]
    end = ctx.expect(ScenarioStep(len(steps) + 1, "end"), raw["end"]) if "end" in raw else None
    if not steps and end is None:
        problems.add(where, "has neither 'steps' nor 'end': it checks nothing")
    return Scenario(path, str(name), users, start_at, start, steps, end, given)


def _given(problems: _Problems, where: str, raw: Any) -> dict:
    """``given: {customers: [{name, phone, language}]}``: customers on file before the start."""
    if raw is None or not problems.keys(where, raw, GIVEN_KEYS, "given"):
        return {}
    customers = raw.get("customers") or []
    if not isinstance(customers, list):
        problems.add(where, f"'customers' must be a list, not {_kind(customers)}")
        return {}
    for n, customer in enumerate(customers, 1):
        what = f"customer {n}"
        if problems.keys(where, customer, CUSTOMER_KEYS, what) and "phone" not in customer:
            problems.add(where, f"{what} needs a 'phone'")
    return {"customers": customers}


def _start_at(problems: _Problems, where: str, raw: Any, zone: ZoneInfo) -> datetime:
    if raw is None:
        return DEFAULT_START.replace(tzinfo=zone)
    try:
        when = datetime.fromisoformat(str(raw))
    except ValueError:
        problems.add(where, f"start_at {raw!r} is not a date and time like 2026-01-05T09:00 or "
                            "2026-01-05T09:00:00+08:00")
        return DEFAULT_START.replace(tzinfo=zone)
    return when if when.tzinfo else when.replace(tzinfo=zone)


class _StepContext:
    def __init__(self, problems: _Problems, where: str, users: set[str]):
        self.problems, self.where, self.users = problems, where, users

    def _actor(self, where: str, raw: dict, default: str = ADMIN) -> str:
        if "as" not in raw:
            return default
        actor = raw["as"]
        if not isinstance(actor, str) or actor not in self.users:
            known = ", ".join(sorted(self.users))
            self.problems.add(where, f"user {actor!r} is not declared under 'users' (declared: {known})")
        return str(actor)

    def _fails(self, where: str, raw: dict) -> str | None:
        if "fails" not in raw:
            return None
        return self.problems.text(where, raw["fails"], "fails")

    def start(self, raw: Any, process: str) -> ScenarioStep:
        where = f"{self.where}, start"
        raw = {} if raw is None else raw
        if not self.problems.keys(where, raw, START_KEYS, "start"):
            return ScenarioStep(0, "start", process)
        if "message" in raw:
            for key in ("data", "process"):
                if key in raw:
                    self.problems.add(where, f"a start by message takes 'keys' and 'payload', not '{key}'")
            payload = self.problems.mapping(where, raw.get("payload"), "payload")
            return ScenarioStep(0, "start", self.problems.text(where, raw["message"], "message"),
                                self._actor(where, raw, SYSTEM), payload,
                                self.problems.mapping(where, raw.get("keys"), "keys"), self._fails(where, raw),
                                by_message=True)
        for key in ("keys", "payload"):
            if key in raw:
                self.problems.add(where, f"'{key}' belongs to a start by message; give 'data' here")
        return ScenarioStep(0, "start", self.problems.text(where, raw.get("process", process), "process"),
                            self._actor(where, raw), self.problems.mapping(where, raw.get("data"), "data"),
                            fails=self._fails(where, raw))

    def step(self, number: int, raw: Any) -> ScenarioStep:
        actions = [k for k in raw if k in ACTIONS] if isinstance(raw, dict) else []
        where = f"{self.where}, step {number}" + (f" ({actions[0]})" if len(actions) == 1 else "")
        if len(actions) != 1:
            found = ", ".join(map(str, raw)) if isinstance(raw, dict) else _kind(raw)
            self.problems.add(where, f"a step does exactly one of: {', '.join(ACTIONS)} (found: {found or 'nothing'})")
            return ScenarioStep(number, "expect", {})
        action = actions[0]
        self.problems.keys(where, raw, ACTIONS[action] | {action}, f"a '{action}' step")
        value = raw[action]
        if action == "expect":
            return self.expect(ScenarioStep(number, "expect"), value)
        if action == "advance":
            seconds = parse_duration(value)
            if seconds is None:
                self.problems.add(where, f"advance {value!r} is not a duration like PT15M, PT4H, P2D or P1DT2H")
            return ScenarioStep(number, action, seconds or 0, fails=self._fails(where, raw))
        target = self.problems.text(where, value, action)
        data = self.problems.mapping(where, raw.get("with" if action == "complete" else "payload"),
                                     "with" if action == "complete" else "payload")
        keys = self.problems.mapping(where, raw.get("keys"), "keys")
        actor = self._actor(where, raw, SYSTEM if action == "message" else ADMIN)
        return ScenarioStep(number, action, target, actor, data, keys, self._fails(where, raw))

    def expect(self, step: ScenarioStep, raw: Any) -> ScenarioStep:
        where = f"{self.where}, {step.where}"
        checks: dict[str, Any] = {}
        if not self.problems.keys(where, raw, EXPECT_KEYS, step.action):
            return step
        if not raw:
            self.problems.add(where, f"'{step.action}' names nothing to check (use: {', '.join(sorted(EXPECT_KEYS))})")
        if "status" in raw:
            if raw["status"] not in InstanceStatus.ALL:
                self.problems.add(where, f"status {raw['status']!r} is not one of: {', '.join(InstanceStatus.ALL)}")
            checks["status"] = raw["status"]
        if "data" in raw:
            checks["data"] = self.problems.mapping(where, raw["data"], "data")
        if "path" in raw:
            checks["path"] = self._names(where, raw["path"], "path")
        if "tasks" in raw:
            checks["tasks"] = [self._task(where, t) for t in self._list(where, raw["tasks"], "tasks")]
        if "incidents" in raw:
            checks["incidents"] = [self._incident(where, i) for i in self._list(where, raw["incidents"], "incidents")]
        if "messages_sent" in raw:
            checks["messages_sent"] = [self._message_sent(where, m)
                                       for m in self._list(where, raw["messages_sent"], "messages_sent")]
        return ScenarioStep(step.number, step.action, checks)

    def _message_sent(self, where: str, raw: Any) -> dict:
        if not isinstance(raw, dict):
            return {"message": self.problems.text(where, raw, "an item of messages_sent")}
        self.problems.keys(where, raw, MESSAGE_SENT_KEYS, "an item of messages_sent")
        sent: dict[str, Any] = {"message": self.problems.text(where, raw.get("message"), "message")}
        for part in ("payload", "keys"):
            if part in raw:
                sent[part] = self.problems.mapping(where, raw[part], part)
        return sent

    def _list(self, where: str, raw: Any, what: str) -> list:
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.problems.add(where, f"'{what}' must be a list (use [] for none), not {_kind(raw)}")
            return []
        return raw

    def _names(self, where: str, raw: Any, what: str) -> list[str]:
        return [self.problems.text(where, item, f"an item of {what}") or "" for item in self._list(where, raw, what)]

    def _task(self, where: str, raw: Any) -> dict:
        if not isinstance(raw, dict):
            return {"task": self.problems.text(where, raw, "an item of tasks")}
        name = raw.get("task")
        if isinstance(name, (str, int)) and not isinstance(name, bool):
            where = f"{where}, task {name}"  # each problem names the task it is about
        if not self.problems.keys(where, raw, TASK_KEYS, "an item of tasks"):
            return {}
        task: dict[str, Any] = {"task": self.problems.text(where, name, "task")}
        if "groups" in raw:
            task["groups"] = self._names(where, raw["groups"], "groups")
        if "assignee" in raw:
            task["assignee"] = None if raw["assignee"] is None else str(raw["assignee"])
        if "due_in" in raw:  # from the task's creation; null: the task has no due date
            task["due_in"] = None if raw["due_in"] is None else parse_duration(raw["due_in"])
            if raw["due_in"] is not None and task["due_in"] is None:
                self.problems.add(where, f"due_in {raw['due_in']!r} is not a duration like PT15M or PT4H "
                                         "(counted from the task's creation; null: no due date)")
        if "due_from_now" in raw:  # from the scenario's clock; negative once past
            value = raw["due_from_now"]
            task["due_from_now"] = None if value is None else parse_signed_duration(value)
            if value is not None and task["due_from_now"] is None:
                self.problems.add(where, f"due_from_now {value!r} is not a duration like PT15M or PT4H "
                                         "(-PT5M: due 5 minutes ago; null: no due date)")
        for key in ("priority", "escalation_level"):
            if key in raw:
                value = raw[key]
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    self.problems.add(where, f"{key} {value!r} is not a whole number like 2")
                task[key] = value
        if "overdue" in raw:
            if not isinstance(raw["overdue"], bool):
                self.problems.add(where, f"overdue {raw['overdue']!r} must be true or false")
            task["overdue"] = raw["overdue"]
        return task

    def _incident(self, where: str, raw: Any) -> dict:
        if not isinstance(raw, dict):
            return {"element": self.problems.text(where, raw, "an item of incidents")}
        self.problems.keys(where, raw, INCIDENT_KEYS, "an item of incidents")
        incident = {"element": self.problems.text(where, raw.get("element"), "element")}
        if "error" in raw:
            incident["error"] = self.problems.text(where, raw["error"], "error")
        return incident
