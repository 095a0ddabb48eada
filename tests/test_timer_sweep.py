"""A sweep fires every due timer: one that fails becomes an incident, the others fire all the same."""
from __future__ import annotations

from datetime import timedelta

from engine_helpers import T0, history, open_elements, status, timers

from app.engine import clock

BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
                  id="Definitions_sweep_batch" targetNamespace="http://hotline.test/bpmn">
  <bpmn:process id="sweep_batch" name="Wait, then divide" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait" />
    <bpmn:intermediateCatchEvent id="wait" name="Wait an hour">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:timerEventDefinition id="wait_timer">
        <bpmn:timeDuration xsi:type="bpmn:tFormalExpression">"PT1H"</bpmn:timeDuration>
      </bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f2" sourceRef="wait" targetRef="divide" />
    <bpmn:scriptTask id="divide" name="Divide">
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing>
      <bpmn:script>share = 100 / parts</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f3" sourceRef="divide" targetRef="check" />
    <bpmn:userTask id="check" name="Check the share"><bpmn:incoming>f3</bpmn:incoming></bpmn:userTask>
  </bpmn:process>
</bpmn:definitions>
"""


def test_one_failing_instance_becomes_an_incident_and_the_others_fire(engine, tmp_path):
    clock.freeze(T0)
    path = tmp_path / "sweep_batch.bpmn"
    path.write_text(BPMN, encoding="utf-8")
    engine.deploy([path])
    ok_1, broken, ok_2 = (engine.start("sweep_batch", {"parts": parts}, "admin") for parts in (4, 0, 5))
    clock.advance(hours=1, seconds=1)

    result = engine.fire_due_timers()

    assert result["fired"] == [ok_1, ok_2]
    [failure] = result["failed"]
    assert failure["instance_id"] == broken and "ZeroDivisionError" in failure["error"]
    assert open_elements(engine.db, ok_1) == open_elements(engine.db, ok_2) == ["check"]
    assert status(engine.db, broken) == "error"
    assert [t.instance_id for t in timers(engine.db)] == [broken]  # rolled back alone: its timer is still there
    assert [len(history(engine.db, i, "timer_fired")) for i in (ok_1, broken, ok_2)] == [1, 0, 1]
    assert engine.fire_due_timers() == {"fired": [], "failed": [], "skipped": []}  # in error: the sweep leaves it


def test_a_limited_sweep_leaves_the_rest_for_the_next_and_fires_each_once(engine, tmp_path):
    clock.freeze(T0)
    path = tmp_path / "sweep_batch.bpmn"
    path.write_text(BPMN, encoding="utf-8")
    engine.deploy([path])
    ids = [engine.start("sweep_batch", {"parts": 2}, "admin") for _ in range(7)]
    clock.advance(timedelta(hours=1, seconds=1).total_seconds())

    assert engine.fire_due_timers(limit=5)["fired"] == ids[:5]  # the earliest due first (here: started first)
    assert engine.fire_due_timers()["fired"] == ids[5:]
    assert all(len(history(engine.db, i, "timer_fired")) == 1 for i in ids)


def test_the_workers_sweep_leaves_a_fresh_burst_to_the_jobs_and_recovers_it_after_its_grace(engine, tmp_path):
    clock.freeze(T0)
    path = tmp_path / "sweep_batch.bpmn"
    path.write_text(BPMN, encoding="utf-8")
    engine.deploy([path])
    iid = engine.start("sweep_batch", {"parts": 2}, "admin")
    clock.advance(timedelta(hours=1, seconds=2).total_seconds())  # due 2 seconds ago

    assert engine.fire_due_timers(grace_seconds=5)["fired"] == []  # its RQ job fires it now
    assert len(timers(engine.db, iid)) == 1 and history(engine.db, iid, "timer_fired") == []
    clock.advance(4)  # the job was lost: 6 seconds late, the sweep takes it
    assert engine.fire_due_timers(grace_seconds=5)["fired"] == [iid]
    assert open_elements(engine.db, iid) == ["check"]
