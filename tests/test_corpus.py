"""Every scenario in ../shared/corpus (real BPMN by other people) through Hotline's engine.

The scenario rules are those of ``../shared/corpus/run_raw.py``: deploy the files, start
the process (or let its start message start it), complete tasks, move the clock and fire
due timers, deliver messages from outside, then compare the end state.
"""
from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from app.engine import clock
from app.models import HumanTask, MessageStart, ProcessModel, TaskStatus

CORPUS = Path(os.environ.get("HOTLINE_CORPUS", Path(__file__).resolve().parents[2] / "shared" / "corpus"))


def _scenarios():
    path = CORPUS / "scenarios.json"
    if not path.exists():
        if os.environ.get("CI"):
            raise RuntimeError(f"the BPMN corpus is missing under CI: {path}")
        return []
    return json.loads(path.read_text())


SCENARIOS = _scenarios()


def test_corpus_is_present_under_ci():
    if os.environ.get("CI") or SCENARIOS:
        assert len(SCENARIOS) >= 35, f"expected the 35 corpus scenarios in {CORPUS}"
    else:
        pytest.skip(f"no corpus at {CORPUS}")


def _open_tasks(db, instance_id):
    with db.transaction() as s:
        return s.scalars(select(HumanTask).where(HumanTask.instance_id == instance_id,
                                                 HumanTask.status.in_(TaskStatus.ACTIVE))
                         .order_by(HumanTask.id)).all()


def _starting_messages(db, key):
    with db.transaction() as s:
        return set(s.scalars(select(MessageStart.message_name)
                             .join(ProcessModel, ProcessModel.latest_version_id == MessageStart.version_id)
                             .where(ProcessModel.key == key)))


def _flat_keys(correlations: dict | None) -> dict:
    keys: dict = {}
    for values in (correlations or {}).values():
        keys.update(values)
    return keys


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s["id"] for s in SCENARIOS])
def test_corpus_scenario(engine, db, scenario, checked_walks):
    clock.freeze(datetime.now(UTC).replace(microsecond=0))
    engine.deploy([CORPUS / f for f in scenario["files"]])
    steps = list(scenario["steps"])
    if steps and "message" in steps[0] and steps[0]["message"] in _starting_messages(db, scenario["process_id"]):
        first = steps.pop(0)
        result = engine.correlate(first["message"], _flat_keys(first.get("correlations")), first.get("payload", {}))
        assert len(result.started) == 1, result
        instance_id = result.started[0]
    else:
        instance_id = engine.start(scenario["process_id"], {}, "admin")

    for n, step in enumerate(steps, 1):
        if "complete" in step:
            matching = [t for t in _open_tasks(db, instance_id) if t.element_id == step["complete"]]
            assert matching, f"step {n}: no open task {step['complete']!r}; open: " \
                             f"{[t.element_id for t in _open_tasks(db, instance_id)]}"
            engine.complete(matching[0].id, "admin", step.get("data", {}))
        elif "advance_seconds" in step:
            clock.advance(step["advance_seconds"])
            engine.fire_due_timers()
        elif "message" in step:
            result = engine.correlate(step["message"], _flat_keys(step.get("correlations")), step.get("payload", {}))
            assert instance_id in result.delivered, f"step {n}: message not delivered: {result}"
        else:
            pytest.fail(f"unknown step {step}")

    expect = scenario["expect"]
    detail = engine.instance_detail(instance_id)
    assert (detail["status"] == "completed") == expect["completed"], detail["status"]
    ready = sorted(t["element_id"] for t in detail["tasks"])
    if "ready" in expect:
        assert ready == sorted(expect["ready"])
    data = detail["data"]
    if expect.get("ready") and not expect["completed"]:
        first = min((t for t in detail["tasks"] if t["element_id"] == expect["ready"][0]), key=lambda t: t["id"])
        data = engine.task_detail(first["id"])["data"]
    for key, value in expect.get("data", {}).items():
        assert key in data, f"data[{key!r}] missing"
        assert data[key] == value, f"data[{key!r}]"
