"""Workflow state without its spec: the spec lives once per process version.

SpiffWorkflow's serializer writes the whole spec into every instance; this converter
leaves it out on the way in and takes the cached spec objects on the way back.
"""
from __future__ import annotations

import json
from copy import deepcopy
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter, TaskConverter
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent
from SpiffWorkflow.util.deep_merge import DeepMerge
from SpiffWorkflow.util.task import TaskState


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

    def from_dict(self, dct, spec=None, subprocess_specs=None):
        if spec is None:
            raise ValueError("workflow state restores only with the version's spec")
        workflow = self.target_class(spec, subprocess_specs, deserializing=True)
        setattr(workflow, _IDS, {})
        try:
            workflow.tasks = self.mapping_from_dict(dct["tasks"], lambda text: _task_id(workflow, text),
                                                    workflow=workflow)
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


def _task_id(workflow, text: str) -> UUID:
    return _once(workflow, _IDS, text, UUID)


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
        ids = workflow.top_workflow.__dict__.get(_IDS)
        if ids is None:  # called outside state.load: parse every id
            ids = {}
        task_spec = workflow.spec.task_specs.get(dct["task_spec"])
        text = dct["id"]
        task = self.target_class(workflow, task_spec, state=dct["state"], id=ids.get(text) or _parsed(ids, text))
        text = dct["parent"]
        parent = None
        if text is not None:
            task._parent = ids.get(text) or _parsed(ids, text)
            parent = workflow.tasks.get(task._parent)  # what ``task.parent`` looks up
        task._children = [ids.get(child) or _parsed(ids, child) for child in dct["children"]]
        task.last_state_change = dct["last_state_change"]
        task.triggered = dct["triggered"]
        internal = dct["internal_data"]
        task.internal_data = self.registry.restore(internal) if internal else {}
        if isinstance(task_spec, CatchingEvent) and task._state & TaskState.WAITING:
            workflow.top_workflow.event_manager.add_task(task)
        delta = dct.get("delta")
        if delta and parent is not None:
            data = DeepMerge.merge({}, parent.data)
            updates = delta.get("updates")
            if updates:
                data.update(self.registry.restore(updates))
            for key in delta.get("deletions", {}):
                if key in data:
                    del data[key]
        else:
            data = self.registry.restore(dct["data"])
        task.data = data
        return task


def _parsed(ids: dict, text: str) -> UUID:
    found = ids[text] = UUID(text)
    return found


def dump(serializer, workflow) -> str:
    """``serializer.serialize_json(workflow)`` (SpiffWorkflow 3.2), task ids printed once, and
    without json's check for circular references (a quarter of the time of a long ticket's
    dump): task data that refers to itself still fails to store, with a RecursionError.

    From a workflow's second dump on, the JSON of its finished tasks is kept on it between
    dumps (``_Fragments``): a ticket that ran 1,000 steps then re-serializes the few tasks that
    changed, not 2,000. A workflow dumped once (loaded for one transaction) pays nothing for it."""
    fragments = workflow.__dict__.get(_FRAGMENTS)
    if fragments is None:
        setattr(workflow, _FRAGMENTS, _Fragments(serializer))
        return _dump(serializer, workflow)
    fragments.active = True
    try:
        return fragments.splice(_dump(serializer, workflow))
    finally:
        fragments.active, fragments.text = False, None


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
        self.state, self.last_state_change, self.triggered = task.state, task.last_state_change, task.triggered
        self.children = list(task._children)
        self.parent = parent
        self.data = _copy(task.data)
        self.internal_data = _copy(task.internal_data) if task.internal_data else {}

    def holds(self, task, parent: _Entry | None) -> bool:
        return (self.parent is parent and self.state == task.state
                and self.last_state_change == task.last_state_change and self.triggered == task.triggered
                and self.children == task._children and self.internal_data == task.internal_data
                and self.data == task.data)


_IMMUTABLE = frozenset({str, int, float, bool, type(None), Decimal, datetime, date, time, timedelta, UUID})


def _copy(value):
    """``deepcopy`` for task data, a few times faster on its usual types (the values of JSON,
    dates and times, Decimal), which it shares instead of copying: they cannot change."""
    kind = type(value)
    if kind is dict:  # values that cannot change are taken as they are, without a call each
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

    def __init__(self, serializer):
        self.registry = serializer.registry
        self.encode = serializer._encoder_cls(check_circular=False).encode
        self.entries: dict = {}
        self.active = False  # during a dump
        self.text: str | None = None  # the tasks' JSON, made in this dump

    @classmethod
    def seeded(cls, serializer, workflow, texts: dict[str, str]) -> _Fragments:
        """Entries for a workflow just restored from ``texts`` (its tasks' JSON, in the order
        the tasks were restored): their JSON is the text they were read from."""
        fragments = cls(serializer)
        entries, finished = fragments.entries, TaskState.FINISHED_MASK
        for text, (task_id, task) in zip(texts.values(), workflow.tasks.items(), strict=True):
            if task._state & finished:
                parent = entries.get(task._parent) if task._parent is not None else None
                if task._parent is None or parent is not None:
                    entries[task_id] = _Entry(task, text, parent)
        return fragments

    def tasks_placeholder(self, workflow) -> str:
        registry, encode = self.registry, self.encode
        old, new, parts = self.entries, {}, []
        finished = TaskState.FINISHED_MASK
        for task_id, task in workflow.tasks.items():
            entry = old.get(task_id)
            parent = new.get(task._parent) if task._parent is not None else None
            if entry is None or not entry.holds(task, parent):
                text = f'"{_id_text(workflow, task_id)}": ' + encode(registry.convert(task))
                cacheable = task._state & finished and (task._parent is None or parent is not None)
                entry = _Entry(task, text, parent) if cacheable else None
                if entry is None:
                    parts.append(text)
                    continue
            new[task_id] = entry
            parts.append(entry.text)
        self.entries = new
        self.text = "{" + ", ".join(parts) + "}"
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
    split = _split_tasks(text) if len(text) >= _SPLIT_ABOVE else None
    dct, texts = split if split is not None else (json.loads(text), None)
    if dct.get(serializer.VERSION_KEY) != serializer.VERSION:
        texts = None  # migrate() changes the dict: the text no longer says what it holds
    serializer.migrate(dct)
    workflow = serializer.from_dict(dct, spec=spec, subprocess_specs=subprocess_specs)
    workflow.script_engine = script_engine
    if texts is not None and len(texts) == len(workflow.tasks):
        setattr(workflow, _FRAGMENTS, _Fragments.seeded(serializer, workflow, texts))
    return workflow


_SPLIT_ABOVE = 32 * 1024  # characters: below, the first dump costs little and json.loads is simpler
_DECODE = json.JSONDecoder().raw_decode  # json.loads, one value at a time (same scanner)


def _split_tasks(text: str) -> tuple[dict, dict[str, str]] | None:
    """``json.loads(text)``, and the text of each of the workflow's own tasks as it stands in
    ``text`` (``'"<id>": {...}'``, what ``_Fragments`` keeps). None when the text is not laid
    out as ``state.dump`` writes it (json's default separators); the caller then parses it whole."""
    try:
        if not text.startswith("{"):
            return None
        dct, texts, i = {}, {}, 1
        while True:
            key, i = _DECODE(text, i)
            if text[i:i + 2] != ": ":
                return None
            if key == "tasks" and text[i + 2] == "{":
                value, i = _split_mapping(text, i + 2, texts)
            else:
                value, i = _DECODE(text, i + 2)
            dct[key] = value
            if text[i] == "}":
                return (dct, texts) if i + 1 == len(text) else None
            if text[i:i + 2] != ", ":
                return None
            i += 2
    except (ValueError, IndexError):
        return None


def _split_mapping(text: str, i: int, texts: dict[str, str]) -> tuple[dict, int]:
    mapping = {}
    i += 1
    if text[i] == "}":
        return mapping, i + 1
    while True:
        start = i
        key, i = _DECODE(text, i)
        if text[i:i + 2] != ": ":
            raise ValueError("not state.dump's layout")
        mapping[key], i = _DECODE(text, i + 2)
        texts[key] = text[start:i]
        if text[i] == "}":
            return mapping, i + 1
        if text[i:i + 2] != ", ":
            raise ValueError("not state.dump's layout")
        i += 2
