"""Every step of every process in ``bpmn/`` is reached by at least one of its scenarios.

The issue asks for every path of every process to be covered by scenarios; a designer who
adds a gateway branch, a boundary timer or an end event without a scenario that reaches it
gets this test failing with the element's id and file. Reached means the engine recorded the
element in an instance's history (a step completed or waiting, a user task opened or completed).
Elements of the called ``escalation`` process count when any process's scenario reaches them.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from lxml import etree

from app.engine import step as engine_step
from app.engine.scenarios import run_paths

ROOT = Path(__file__).resolve().parent.parent
NS = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL"}
FLOW_NODES = {"task", "userTask", "manualTask", "scriptTask", "serviceTask", "sendTask", "receiveTask",
              "businessRuleTask", "callActivity", "subProcess", "exclusiveGateway", "parallelGateway",
              "inclusiveGateway", "eventBasedGateway", "startEvent", "endEvent", "intermediateCatchEvent",
              "intermediateThrowEvent", "boundaryEvent"}
REACHED = {"step_completed", "step_waiting", "task_created", "task_completed"}
CALLED_ONLY = {"escalation"}  # processes that only ever run as a call activity of others


def _flow_nodes() -> dict[str, tuple[Path, set[str]]]:
    found = {}
    for file in sorted((ROOT / "bpmn").glob("*.bpmn")):
        for process in etree.parse(str(file)).iterfind(".//bpmn:process", NS):
            nodes = {el.get("id") for el in process.iter() if isinstance(el.tag, str)
                     and etree.QName(el).localname in FLOW_NODES}
            found[process.get("id")] = (file, nodes)
    return found


def test_every_step_of_every_process_is_reached_by_a_scenario(monkeypatch):
    reached: dict[str, set[str]] = defaultdict(set)
    record = engine_step.Step.record

    def recording(self, kind, element_id=None, **detail):
        if element_id and kind in REACHED:
            reached[self.compiled.key].add(element_id)
        return record(self, kind, element_id, **detail)

    monkeypatch.setattr(engine_step.Step, "record", recording)
    results = run_paths(ROOT / "bpmn" / "scenarios", ROOT / "forms", library=ROOT / "bpmn")
    assert all(r.passed for r in results), [r.id for r in results if not r.passed]

    anywhere = set().union(*reached.values())
    missing = []
    for key, (file, nodes) in _flow_nodes().items():
        got = anywhere if key in CALLED_ONLY else reached.get(key, set())
        missing += [f"{file.name}: {key}/{element}" for element in sorted(nodes - got)]
    assert not missing, "no scenario reaches these steps; add one to bpmn/scenarios/:\n" + "\n".join(missing)
    assert set(_flow_nodes()) - CALLED_ONLY <= set(reached), "a process in bpmn/ has no scenario at all"
