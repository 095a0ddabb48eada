"""Service operations see the calling instance, and what they announce reaches the
engine's after-commit hooks only when the step committed."""
from __future__ import annotations

import pytest

from app.errors import StepFailed
from app.services import context, registry
from app.services.registry import operation


@operation("test.announce")
def _announce(what: str, _instance_id: int) -> dict:
    """Announce ``what`` for after the commit (tests only)."""
    context.after_commit("test", (_instance_id, what))
    if what == "boom":
        raise RuntimeError("boom")
    return {"instance": _instance_id}


SERVICE_BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="d" targetNamespace="t">
  <bpmn:process id="announcer" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="call"/>
    <bpmn:serviceTask id="call">
      <bpmn:extensionElements>
        <spiffworkflow:serviceTaskOperator id="test.announce" resultVariable="result">
          <spiffworkflow:parameters>
            <spiffworkflow:parameter id="what" type="str" value="what"/>
          </spiffworkflow:parameters>
        </spiffworkflow:serviceTaskOperator>
      </bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:sequenceFlow id="f2" sourceRef="call" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


@pytest.fixture
def announcer(engine, tmp_path):
    path = tmp_path / "announcer.bpmn"
    path.write_text(SERVICE_BPMN)
    engine.deploy([path])
    seen: list = []
    engine.on_committed.append(seen.append)
    return seen


def test_an_operation_gets_its_instance_and_announces_after_the_commit(engine, announcer):
    instance_id = engine.start("announcer", {"what": "hello"})
    assert announcer == [[("test", (instance_id, "hello"))]]
    assert engine.instance_detail(instance_id)["data"]["result"] == {"instance": instance_id}


def test_a_failed_step_announces_nothing(engine, announcer):
    with pytest.raises(StepFailed):
        engine.start("announcer", {"what": "boom"})
    assert announcer == []


def test_outside_a_step_an_instance_operation_says_what_it_needs():
    with pytest.raises(context.NoTransaction, match="acts on the instance"):
        registry.call("test.announce", {"what": "x"})
