"""The stored workflow state: Hotline's faster task converter writes and reads exactly what
SpiffWorkflow's own converter does.

``app.engine.state`` parses and prints each task id once per restore / serialization instead
of three or four times (a ticket that ran 1,000 steps restores in half the time). A state it
writes must be the state SpiffWorkflow would write, and a state SpiffWorkflow wrote must come
back as the same workflow: checked here at every save and load while every process in
``bpmn/`` runs its scenarios (call activities, multi-instance tasks, boundary timers, messages).
"""
from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from loop_workflow import loop, run_round
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.workflow import TaskConverter, WorkflowConverter
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG
from SpiffWorkflow.spiff.parser import SpiffBpmnParser
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from app.engine import state
from app.engine.dialects import DIALECTS
from app.engine.scenarios import run_paths

ROOT = Path(__file__).resolve().parent.parent


class _PlainConverter(state.StatelessSpecConverter):
    """The same stored shape through SpiffWorkflow's own code only (no id caches)."""

    def to_dict(self, workflow):
        dct = WorkflowConverter.to_dict(self, workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct


def _reference(dialect) -> BpmnWorkflowSerializer:
    config = dict(CAMUNDA_CONFIG if dialect.name == "camunda" else SPIFF_CONFIG)
    config[BpmnWorkflow] = _PlainConverter
    config[Task] = TaskConverter
    reference = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(config))
    for typename, to_dict in dialect.serializer.registry.convert_to_dict.items():  # Decimal, date
        if typename not in reference.registry.convert_to_dict:
            cls = next(c for c, name in dialect.serializer.registry.typenames.items() if name == typename)
            reference.registry.register(cls, to_dict, dialect.serializer.registry.convert_from_dict[typename])
    return reference


def _plain_load(serializer, text: str, spec, subprocess_specs):
    dct = json.loads(text)
    serializer.migrate(dct)
    return serializer.from_dict(dct, spec=spec, subprocess_specs=subprocess_specs)


def test_the_states_of_every_process_in_the_library_are_spiffworkflows_own(monkeypatch):
    references = {d.serializer: _reference(d) for d in DIALECTS.values()}
    checked = {"dumps": 0, "loads": 0}
    fast_dump, fast_load = state.dump, state.load

    def dump(serializer, workflow):
        text = fast_dump(serializer, workflow)
        assert json.loads(text) == json.loads(references[serializer].serialize_json(workflow))
        checked["dumps"] += 1
        return text

    def load(serializer, text, spec, subprocess_specs, script_engine):
        workflow = fast_load(serializer, text, spec, subprocess_specs, script_engine)
        plain = _plain_load(references[serializer], text, spec, subprocess_specs)
        reference = references[serializer]
        assert json.loads(reference.serialize_json(workflow)) == json.loads(reference.serialize_json(plain))
        assert {t.id: (t.state, t.data) for t in workflow.get_tasks()} == \
            {t.id: (t.state, t.data) for t in plain.get_tasks()}
        checked["loads"] += 1
        return workflow

    monkeypatch.setattr(state, "dump", dump)
    monkeypatch.setattr(state, "load", load)
    results = run_paths(ROOT / "bpmn" / "scenarios", ROOT / "forms", library=ROOT / "bpmn")
    failed = [f"{r.scenario}: {r.failures}" for r in results if not r.passed]
    assert not failed, "\n".join(failed)
    assert checked["dumps"] > 200 and checked["loads"] > 50, checked


@pytest.mark.parametrize("rounds", [0, 1, 60])
def test_a_long_loop_round_trips(rounds):
    """The benchmark's loop: user task -> gateway -> back, 2 tasks per round."""
    workflow = loop()
    spec, subprocess_specs = workflow.spec, workflow.subprocess_specs
    for n in range(rounds):
        run_round(workflow, count=n)
    serializer = DIALECTS["spiff"].serializer
    reference = _reference(DIALECTS["spiff"])

    text = state.dump(serializer, workflow)
    assert json.loads(text) == json.loads(reference.serialize_json(workflow))
    again = state.load(serializer, text, spec, subprocess_specs, None)
    assert state.dump(serializer, again) == text
    ready = again.get_next_task(state=TaskState.READY, manual=True)
    assert ready.data == {"limit": 10**9, "count": rounds - 1} if rounds else {"limit": 10**9}
    assert len(again.tasks) == len(workflow.tasks)


def _dumps_agree(workflow) -> str:
    """state.dump, which reuses finished tasks' JSON from earlier dumps of this workflow, writes
    byte for byte what SpiffWorkflow's own serializer writes from scratch, one task per line."""
    text = state.dump(DIALECTS["spiff"].serializer, workflow)
    assert text == _one_task_per_line(_reference(DIALECTS["spiff"]).serialize_json(workflow))
    return text


def _one_task_per_line(text: str) -> str:
    """SpiffWorkflow's JSON of a workflow laid out as state.dump writes it."""
    dct = json.loads(text)
    assert json.dumps(dct) == text
    keys = list(dct)
    before, after = keys[:keys.index("tasks")], keys[keys.index("tasks") + 1:]
    head = json.dumps({key: dct[key] for key in before})[:-1] + ', "tasks": {'
    tail = ", " + json.dumps({key: dct[key] for key in after})[1:]
    lines = [f'"{task_id}": ' + json.dumps(task) for task_id, task in dct["tasks"].items()]
    return head + "\n" + ",\n".join(lines) + "\n}" + tail


def test_every_dump_of_a_workflow_kept_in_memory_is_whole():
    workflow = loop()
    for n in range(30):
        run_round(workflow, count=n)
        _dumps_agree(workflow)
    assert len(workflow.__dict__[state._FRAGMENTS].entries) > 50  # the finished tasks' JSON is reused


def test_a_change_that_reaches_finished_tasks_through_shared_data_is_stored():
    """SpiffWorkflow copies task data one level deep: a nested dict is shared by a task and the
    tasks before it, so a script changing it in the ready task changes finished tasks too."""
    workflow = loop(order={"lines": [{"sku": "A-1", "qty": 1}]})
    for n in range(5):
        run_round(workflow, count=n)
        _dumps_agree(workflow)
    ready = workflow.get_next_task(state=TaskState.READY, manual=True)
    ready.data["order"]["lines"][0]["qty"] = 7  # what a script task would do
    text = _dumps_agree(workflow)
    assert '"qty": 7' in text and '"qty": 1' not in text  # the first task's data changed too


def test_finished_tasks_changed_directly_or_dropped_are_stored_as_they_are_now():
    workflow = loop()
    for n in range(6):
        run_round(workflow, count=n)
        _dumps_agree(workflow)
    finished = [t for t in workflow.get_tasks(state=TaskState.COMPLETED) if t.task_spec.name == "work"]
    finished[2].data["note"] = "corrected"
    finished[3].internal_data["seen"] = True
    assert '"note": "corrected"' in _dumps_agree(workflow)
    finished[1].reset_branch(None)  # drops every task after it
    workflow.do_engine_steps()
    text = _dumps_agree(workflow)
    assert str(finished[4].id) not in text
    run_round(workflow, count=99)
    _dumps_agree(workflow)


def test_a_large_state_read_back_keeps_its_tasks_json_and_stores_changes_whole():
    """state.load keeps each finished task's JSON as read (a large state's first dump then
    reuses it); whatever changes after the load is still stored."""
    workflow = loop(order={"lines": [{"sku": "A-1", "qty": 1}]})
    workflow.data["tasks"] = {"note": "a key named like the state's own"}  # parsed at the top level right
    for n in range(120):
        run_round(workflow, count=n)
    serializer = DIALECTS["spiff"].serializer
    text = _dumps_agree(workflow)
    assert len(text) > state._SEED_ABOVE

    again = state.load(serializer, text, workflow.spec, workflow.subprocess_specs, workflow.script_engine)
    assert len(again.__dict__[state._FRAGMENTS].entries) > 200
    assert _dumps_agree(again) == text
    again.get_next_task(state=TaskState.READY, manual=True).data["order"]["lines"][0]["qty"] = 3
    run_round(again, count=500)
    text = _dumps_agree(again)
    assert '"qty": 3' in text and '"count": 500' in text and '"qty": 1' not in text


def test_a_state_not_laid_out_as_dump_writes_it_is_read_whole():
    workflow = loop()
    for n in range(120):
        run_round(workflow, count=n)
    serializer = DIALECTS["spiff"].serializer
    text = state.dump(serializer, workflow)
    spiffs_own = _reference(DIALECTS["spiff"]).serialize_json(workflow)  # what earlier versions stored
    for other in (json.dumps(json.loads(text), indent=1), json.dumps(json.loads(text), separators=(",", ":")),
                  spiffs_own):
        assert state._task_texts(other, json.loads(other)) is None
        again = state.load(serializer, other, workflow.spec, workflow.subprocess_specs, None)
        assert state._FRAGMENTS not in again.__dict__
        assert _dumps_agree(again) == text


def test_what_orjson_does_not_read_is_read_by_json():
    """NaN and integers beyond 64 bits are valid task data for SpiffWorkflow and json."""
    workflow = loop(ratio=float("nan"), serial=2**70)
    for n in range(120):
        run_round(workflow, count=n)
    serializer = DIALECTS["spiff"].serializer
    text = _dumps_agree(workflow)
    again = state.load(serializer, text, workflow.spec, workflow.subprocess_specs, None)
    assert state._FRAGMENTS in again.__dict__
    assert _dumps_agree(again) == text
    ready = again.get_next_task(state=TaskState.READY, manual=True)
    assert ready.data["serial"] == 2**70 and ready.data["ratio"] != ready.data["ratio"]


def test_typed_values_set_in_later_tasks_come_back_as_their_types():
    """A task's data is stored as the changes from its parent's: Decimal, date and nested values
    in those changes are restored as what they were, plain values as they are."""
    workflow = loop()
    run_round(workflow, count=1, amount=Decimal("12.50"), due=date(2026, 12, 24), lines=[{"sku": "A-1"}])
    run_round(workflow, count=2, amount=Decimal("99.99"))
    serializer = DIALECTS["spiff"].serializer
    again = state.load(serializer, state.dump(serializer, workflow), workflow.spec, workflow.subprocess_specs, None)
    ready = again.get_next_task(state=TaskState.READY, manual=True)
    assert ready.data == {"limit": 10**9, "count": 2, "amount": Decimal("99.99"), "due": date(2026, 12, 24),
                          "lines": [{"sku": "A-1"}]}
    assert {t.id: t.data for t in again.tasks.values()} == {t.id: t.data for t in workflow.tasks.values()}


@pytest.mark.parametrize("rounds", [2, 120])  # a small state, and one whose tasks' JSON is kept
def test_task_data_with_a_key_named_typename_is_read_back(rounds):
    """SpiffWorkflow marks its typed values with a "typename" key and, reading a state, takes
    every dict with one for such a value: data a user or a form named so must still load."""
    workflow = loop(note={"typename": "free text", "lines": [{"typename": ["a"]}]}, typename="top")
    for n in range(rounds):
        run_round(workflow, count=n, reply={"typename": "reply"} if n == 1 else {"plain": n},
               amount=Decimal("1.10"))
    serializer = DIALECTS["spiff"].serializer
    text = _dumps_agree(workflow)
    again = state.load(serializer, text, workflow.spec, workflow.subprocess_specs, None)
    assert {t.id: t.data for t in again.tasks.values()} == {t.id: t.data for t in workflow.tasks.values()}
    ready = again.get_next_task(state=TaskState.READY, manual=True)
    assert ready.data["note"] == {"typename": "free text", "lines": [{"typename": ["a"]}]}
    assert ready.data["typename"] == "top" and ready.data["amount"] == Decimal("1.10")
    assert _dumps_agree(again) == text


def test_restored_tasks_have_the_attributes_task_init_gives():
    """state restores tasks without Task.__init__: a SpiffWorkflow that adds an attribute there
    must fail here, not leave restored tasks without it."""
    workflow = loop()
    run_round(workflow, count=1)
    again = state.load(DIALECTS["spiff"].serializer, state.dump(DIALECTS["spiff"].serializer, workflow),
                       workflow.spec, workflow.subprocess_specs, None)
    made = Task(again, again.spec.task_specs["work"])
    for task in again.tasks.values():
        if task is not made:
            assert set(vars(task)) == set(vars(made)), task
            original = workflow.tasks[task.id]
            assert (task.parent and task.parent.id, [c.id for c in task.children], task.state, task.data) == \
                (original.parent and original.parent.id, [c.id for c in original.children], original.state,
                 original.data)


def test_task_data_that_refers_to_itself_is_refused_not_stored():
    """json's circular-reference check is off in state.dump; such data must still fail to store
    (the engine turns the failure into an incident and writes nothing)."""
    parser = SpiffBpmnParser()
    parser.add_bpmn_file(str(ROOT / "bench" / "data" / "loop.bpmn"))
    workflow = BpmnWorkflow(parser.get_spec("bench_loop"), parser.get_subprocess_specs("bench_loop"))
    cyclic = {"round": 1}
    cyclic["again"] = cyclic
    for task in workflow.get_tasks(state=TaskState.READY):
        task.set_data(limit=10**9, loop=cyclic)
    with pytest.raises((RecursionError, ValueError)):
        state.dump(DIALECTS["spiff"].serializer, workflow)
