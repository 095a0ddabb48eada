"""Workflow state without its spec: the spec lives once per process version.

SpiffWorkflow's serializer writes the whole spec into every instance; this converter
leaves it out on the way in and takes the cached spec objects on the way back.
"""
from __future__ import annotations

import json
from copy import copy, deepcopy
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from uuid import UUID, SafeUUID, uuid4

import orjson
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter, TaskConverter
from SpiffWorkflow.bpmn.serializer.helpers.registry import DefaultRegistry
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.deep_merge import DeepMerge
from SpiffWorkflow.util.task import TaskState


class TolerantRegistry(DefaultRegistry):
    """SpiffWorkflow's registry, which stores a Decimal as ``{"value": ..., "typename": "Decimal"}``
    and restores every dict with a ``typename`` key as the type it names. Task data is free-form:
    a form field or an API payload may be called ``typename`` too, and SpiffWorkflow then fails
    to read the state back (no type of that name), leaving the ticket unloadable. Here a dict
    whose ``typename`` names no known type is restored as the plain dict it was."""

    def restore(self, val, **kwargs):
        if type(val) is dict and "typename" in val:
            typename = val["typename"]
            if not isinstance(typename, str) or typename not in self.convert_from_dict:
                return {key: self.restore(value, **kwargs) for key, value in val.items()}
        return super().restore(val, **kwargs)


class StatelessSpecConverter(BpmnWorkflowConverter):
    def to_dict(self, workflow):
        dct = {  # WorkflowConverter.to_dict, with the task ids' text made once
            "data": self.registry.convert(self.registry.clean(workflow.data)),
            "correlations": workflow.correlations,
            "last_task": str(workflow.last_task.id) if workflow.last_task is not None else None,
            "success": workflow.success,
            "completed": workflow.completed,
            "tasks": _tasks_or_placeholder(self.registry, workflow),
            "root": str(workflow.task_tree.id),
        }
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct, spec=None, subprocess_specs=None, restore_tasks=None):
        """``restore_tasks(registry, dct["tasks"], workflow)`` fills ``workflow.tasks``
        (``catch_up`` passes one that reuses tasks of a kept workflow)."""
        if spec is None:
            raise ValueError("workflow state restores only with the version's spec")
        workflow = self.target_class(spec, subprocess_specs, deserializing=True)
        setattr(workflow, _IDS, {})
        try:
            workflow.tasks = (restore_tasks or _restore_tasks)(self.registry, dct["tasks"], workflow)
            workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
            self.set_default_attributes(workflow, dct)
            self.subprocesses_from_dict(dct["subprocesses"], workflow)
            workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        finally:
            delattr(workflow, _IDS)
        return workflow


_IDS = "_hotline_task_ids"  # attribute of a workflow while it is being restored: task ids parsed so far
_TEXTS = "_hotline_id_texts"  # attribute of a workflow while it is being serialized: task ids as text so far


def _once(workflow, cache_name: str, key, make):
    """``make(key)``, made once per restore or serialization (the workflow holds the cache
    under ``cache_name`` meanwhile): each task id appears three times in a state (the task's
    own, in its parent's children, as its children's parent), and parsing or printing one
    costs more than the rest of a task's conversion."""
    cache = workflow.top_workflow.__dict__.get(cache_name)
    if cache is None:
        return make(key)
    found = cache.get(key)
    if found is None:
        found = cache[key] = make(key)
    return found


def _id_text(workflow, task_id: UUID) -> str:
    return _once(workflow, _TEXTS, task_id, str)


class FastTaskConverter(TaskConverter):
    """SpiffWorkflow 3.2's ``TaskConverter`` with each task id parsed (printed) once per restore
    (dump) instead of three or four times: a ticket that ran 1,000 steps restores in half the
    time. Same input, same task; same task, same output."""

    def to_dict(self, task):
        workflow, parent = task.workflow, task.parent
        if parent is None:
            data, delta = task.data, {}
        else:
            data, delta = {}, {"updates": DeepMerge.get_updated_keys(parent.data, task.data),
                               "deletions": DeepMerge.get_deleted_keys(parent.data, task.data)}
        return {
            "id": _id_text(workflow, task.id),
            "parent": _id_text(workflow, task._parent) if parent is not None else None,
            "children": [_id_text(workflow, child) for child in task._children],
            "last_state_change": task.last_state_change,
            "state": task.state,
            "task_spec": task.task_spec.name,
            "triggered": task.triggered,
            "internal_data": self.registry.convert(task.internal_data) if task.internal_data else {},
            "data": data,
            "delta": delta,
        }

    def from_dict(self, dct, workflow):
        return _restore_task(self.registry, self.target_class, dct, workflow)


def _restore_tasks(registry, mapping: dict, workflow) -> dict:
    """``mapping_from_dict(mapping, UUID, workflow=workflow)`` for a workflow's tasks, each task
    restored straight from its dict rather than through the registry (which copies every task's
    dict to take its ``typename`` out); anything else goes through the registry. Every task adds
    itself to ``workflow.tasks`` (as ``Task.__init__`` does), in the order of ``mapping``."""
    typename, tasks = registry.typenames[Task], workflow.tasks
    ids = workflow.top_workflow.__dict__.get(_IDS)
    for text, dct in mapping.items():
        if type(dct) is dict and dct.get("typename") == typename:
            _restore_task(registry, Task, dct, workflow, ids)
        else:
            tasks[ids.get(text) or _parsed(ids, text)] = registry.restore(dct, workflow=workflow)
    return tasks


_MUTABLE = (dict, list, set)
_JSON_TYPES = frozenset({str, int, float, bool, type(None)})  # what registry.restore returns as it is
_new = object.__new__


def _restore_task(registry, cls, dct: dict, workflow, ids: dict | None = None):
    """SpiffWorkflow 3.2's ``TaskConverter.from_dict``: the same task, made without running
    ``Task.__init__`` (which sets every attribute twice and looks the parent up) and with each
    id parsed once per restore (``_IDS``). ``tests/test_state.py`` checks the attributes
    against those ``Task.__init__`` sets."""
    if ids is None:
        ids = workflow.top_workflow.__dict__.get(_IDS)
        if ids is None:  # called outside state.load: parse every id
            ids = {}
    task_spec = workflow.spec.task_specs.get(dct["task_spec"])
    text = dct["id"]
    task_id = ids.get(text) or _parsed(ids, text)
    text = dct["parent"]
    parent_id = parent = None
    if text is not None:
        parent_id = ids.get(text) or _parsed(ids, text)
        parent = workflow.tasks.get(parent_id)  # what ``task.parent`` looks up
    delta = dct.get("delta")
    if delta and parent is not None:  # DeepMerge.merge({}, parent.data), then the delta
        data = parent.data
        if _IMMUTABLE.issuperset(map(type, data.values())):  # nothing to copy but the dict
            data = data.copy()
        else:
            data = {key: copy(value) if isinstance(value, _MUTABLE) else value for key, value in data.items()}
        updates = delta.get("updates")
        if updates and "typename" not in updates:  # registry.restore(updates), values of JSON's own types as they are
            data.update(updates)
            for key, value in updates.items():
                if type(value) not in _JSON_TYPES:
                    data[key] = registry.restore(value)
        elif updates:
            data.update(registry.restore(updates))
        for key in delta.get("deletions", {}):
            if key in data:
                del data[key]
    else:
        data = registry.restore(dct["data"])
    children = dct["children"]
    if len(children) == 1:  # most tasks: no list comprehension to set up
        child = children[0]
        children = [ids.get(child) or _parsed(ids, child)]
    else:
        children = [ids.get(child) or _parsed(ids, child) for child in children]
    internal = dct["internal_data"]
    internal = registry.restore(internal) if internal else {}
    if task_spec is None:  # Task.__init__ stands a StartTask in for it
        task = cls(workflow, None, state=dct["state"], id=task_id)
        task.__dict__.update(_parent=parent_id, _children=children, last_state_change=dct["last_state_change"],
                             triggered=dct["triggered"], internal_data=internal, data=data)
    else:
        task = _new(cls)
        task.__dict__.update(id=task_id, workflow=workflow, _parent=parent_id, _children=children,
                             _state=dct["state"], triggered=dct["triggered"], task_spec=task_spec,
                             thread_id=cls.thread_id_pool, data=data, internal_data=internal,
                             last_state_change=dct["last_state_change"])
        workflow.tasks[task_id] = task
    if isinstance(task_spec, CatchingEvent) and task._state & TaskState.WAITING:
        workflow.top_workflow.event_manager.add_task(task)
    return task


def _parsed(ids: dict, text: str) -> UUID:
    found = ids[text] = _uuid(text)
    return found


_set = object.__setattr__
_UNKNOWN = SafeUUID.unknown  # an enum member: slow to look up each time


def _uuid(text: str) -> UUID:
    """``UUID(text)``, twice as fast for the form ids are stored in (36 characters): the same
    checks (32 hex digits once the hyphens are gone), the same object."""
    digits = text.replace("-", "")
    if len(text) != 36 or len(digits) != 32:
        return UUID(text)
    found = _new(UUID)
    _set(found, "int", int(digits, 16))
    _set(found, "is_safe", _UNKNOWN)
    return found


def dump(serializer, workflow) -> str:
    """``serializer.serialize_json(workflow)`` (SpiffWorkflow 3.2), task ids printed once, and
    without json's check for circular references (a quarter of the time of a long ticket's
    dump): task data that refers to itself still fails to store, with a RecursionError.

    The workflow's own tasks are written one per line (``_tasks_text``), so ``load`` finds each
    task's JSON without a JSON scanner of its own. From a workflow's second dump on, the JSON of
    its finished tasks is kept on it between dumps (``_Fragments``): a ticket that ran 1,000
    steps then re-serializes the few tasks that changed, not 2,000. A workflow dumped once
    (loaded for one transaction) pays nothing for it."""
    fragments = workflow.__dict__.get(_FRAGMENTS)
    if fragments is None:
        fragments = _Fragments(serializer, keep=False)
        setattr(workflow, _FRAGMENTS, fragments)
    fragments.active = True
    try:
        return fragments.splice(_dump(serializer, workflow))
    finally:
        fragments.active, fragments.text, fragments.keep = False, None, True


def _dump(serializer, workflow) -> str:
    setattr(workflow, _TEXTS, {})
    serializer.registry._encoder_mode = True
    try:
        dct = serializer.to_dict(workflow)
        dct[serializer.VERSION_KEY] = serializer.VERSION
        return json.dumps(dct, cls=serializer._encoder_cls, check_circular=False)
    finally:
        serializer.registry._encoder_mode = False
        delattr(workflow, _TEXTS)


_FRAGMENTS = "_hotline_fragments"  # attribute of a workflow: its finished tasks' JSON (_Fragments)
_PLACEHOLDER = f"hotline-tasks-{uuid4()}"  # stands for the tasks' JSON until it is spliced in


def _tasks_or_placeholder(registry, workflow):
    fragments = workflow.__dict__.get(_FRAGMENTS)
    if fragments is None or not fragments.active:  # a subprocess, or to_dict called outside dump
        return {_id_text(workflow, k): registry.convert(v) for k, v in workflow.tasks.items()}
    return fragments.tasks_placeholder(workflow)


class _Entry:
    """A finished task's JSON and what it was made from: valid while all of it is unchanged."""

    __slots__ = ("text", "state", "last_state_change", "triggered", "children", "parent",
                 "data", "internal_data")

    def __init__(self, task, text: str, parent: _Entry | None):
        self.text = text
        self.state, self.last_state_change, self.triggered = task._state, task.last_state_change, task.triggered
        self.children = list(task._children)
        self.parent = parent
        self.data = _copy(task.data)
        self.internal_data = _copy(task.internal_data) if task.internal_data else {}

    def holds(self, task, parent: _Entry | None) -> bool:
        return (self.parent is parent and self.state == task._state
                and self.last_state_change == task.last_state_change and self.triggered == task.triggered
                and self.children == task._children and self.internal_data == task.internal_data
                and self.data == task.data)


_IMMUTABLE = frozenset({str, int, float, bool, type(None), Decimal, datetime, date, time, timedelta, UUID})


def _copy(value):
    """``deepcopy`` for task data, a few times faster on its usual types (the values of JSON,
    dates and times, Decimal), which it shares instead of copying: they cannot change."""
    kind = type(value)
    if kind is dict:  # values that cannot change are taken as they are, without a call each
        if _IMMUTABLE.issuperset(map(type, value.values())):  # the usual task data: only those
            return value.copy()
        return {key: item if type(item) in _IMMUTABLE else _copy(item) for key, item in value.items()}
    if kind is list:
        return [item if type(item) in _IMMUTABLE else _copy(item) for item in value]
    if kind in _IMMUTABLE:
        return value
    return deepcopy(value)


class _Fragments:
    """The JSON of a workflow's finished tasks, kept between dumps.

    A task's JSON is reused only while everything it was made from compares equal to a deep
    copy taken when it was made: state, state-change time, children, internal data, its data,
    and its parent's entry (a task's data is stored as the difference from its parent's). Task
    data is compared, not trusted: SpiffWorkflow shares nested lists and dicts between a parent
    and its children, so a script can change a finished task's data through a later one. Tasks
    not finished are serialized at every dump. (What comparing cannot see: a finished task's
    value replaced by an equal one that prints differently, 1 by 1.0 or True.)"""

    def __init__(self, serializer, keep: bool = True):
        self.registry = serializer.registry
        self.encode = serializer._encoder_cls(check_circular=False).encode
        self.entries: dict[int, _Entry] = {}  # by task id's int: a UUID's own hash is Python code
        self.keep = keep  # make entries in this dump (not in a workflow's first: it may be its only)
        self.active = False  # during a dump
        self.text: str | None = None  # the tasks' JSON, made in this dump

    @classmethod
    def seeded(cls, serializer, workflow, texts: list[str]) -> _Fragments:
        """Entries for a workflow just restored from ``texts`` (its tasks' JSON, in the order
        the tasks were restored): their JSON is the text they were read from."""
        fragments = cls(serializer)
        entries, finished = fragments.entries, TaskState.FINISHED_MASK
        for text, (task_id, task) in zip(texts, workflow.tasks.items(), strict=True):
            if task._state & finished:
                parent = entries.get(task._parent.int) if task._parent is not None else None
                if task._parent is None or parent is not None:
                    entries[task_id.int] = _Entry(task, text, parent)
        return fragments

    def tasks_placeholder(self, workflow) -> str:
        registry, encode = self.registry, self.encode
        old, new, parts = self.entries, {}, []
        finished = TaskState.FINISHED_MASK if self.keep else 0
        for task_id, task in workflow.tasks.items():
            entry = old.get(task_id.int)
            parent = new.get(task._parent.int) if task._parent is not None else None
            if entry is None or not entry.holds(task, parent):
                text = f'"{_id_text(workflow, task_id)}": ' + encode(registry.convert(task))
                cacheable = task._state & finished and (task._parent is None or parent is not None)
                entry = _Entry(task, text, parent) if cacheable else None
                if entry is None:
                    parts.append(text)
                    continue
            new[task_id.int] = entry
            parts.append(entry.text)
        self.entries = new
        self.text = "{\n" + ",\n".join(parts) + "\n}" if parts else "{}"
        return _PLACEHOLDER

    def splice(self, text: str) -> str:
        if self.text is None:
            return text
        head, tail = text.split(f'"{_PLACEHOLDER}"', 1)
        return head + self.text + tail


def load(serializer, text: str, spec, subprocess_specs, script_engine):
    """The workflow stored as ``text``. A large state's finished tasks keep the JSON they were
    read from (``_Fragments.seeded``), so the transaction's one dump reuses it instead of
    re-serializing every task the ticket ever ran."""
    dct = _parse(text)
    texts = _task_texts(text, dct) if len(text) >= _SEED_ABOVE else None
    if dct.get(serializer.VERSION_KEY) != serializer.VERSION:
        texts = None  # migrate() changes the dict: the text no longer says what it holds
    serializer.migrate(dct)
    workflow = serializer.from_dict(dct, spec=spec, subprocess_specs=subprocess_specs)
    workflow.script_engine = script_engine
    if texts is not None and len(texts) == len(workflow.tasks):
        setattr(workflow, _FRAGMENTS, _Fragments.seeded(serializer, workflow, texts))
    return workflow


_SEED_ABOVE = 32 * 1024  # characters: below, the first dump costs little


def _parse(text: str) -> dict:
    """``json.loads(text)``, three times faster with orjson; what orjson refuses and json reads
    (NaN, Infinity, integers beyond 64 bits) goes to json."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _task_texts(text: str, dct: dict) -> list[str] | None:
    """The text of each of the workflow's own tasks as it stands in ``text`` (``'"<id>": {...}'``,
    what ``_Fragments`` keeps), in the order of ``dct["tasks"]``; None when the text is not laid
    out as ``dump`` writes it (an older layout, or written by another program)."""
    tasks = dct.get("tasks")
    lines = task_lines(text)
    if not isinstance(tasks, dict) or lines is None or len(lines) != len(tasks) + 2:
        return None
    texts = lines[1:-1]
    for key, line in zip(tasks, texts, strict=True):
        if not line.startswith(f'"{key}": {{'):
            return None
    return texts


_ID = len('"00000000-0000-0000-0000-000000000000": ')  # how a task's line starts: its id as a key


def task_lines(text: str) -> list[str] | None:
    """``text`` cut into its head (up to ``"tasks": {``), one line per task (without the comma
    after it) and its tail, as ``dump`` writes it: the tasks one per line, the only line breaks
    in its output (json escapes those in strings). None when it is laid out otherwise."""
    lines = text.split("\n")
    if len(lines) < 3 or not lines[0].endswith('"tasks": {') or not lines[-1].startswith("}"):
        return None
    last = len(lines) - 2
    for n in range(1, last + 1):
        line = lines[n]
        if line[:1] != '"' or line[_ID - 3:_ID + 1] != '": {':
            return None
        if n != last:
            if not line.endswith("},"):
                return None
            lines[n] = line[:-1]
        elif not line.endswith("}"):
            return None
    return lines
