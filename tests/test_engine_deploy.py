"""Deploying the process library: bad files are refused whole, changes make new versions."""
from __future__ import annotations

import json

import pytest
from conftest import bpmn_path
from engine_helpers import complete, count, open_elements, status
from sqlalchemy import select

from app.errors import LibraryInvalid
from app.models import ProcessModel, ProcessVersion


def _refused(engine, *names: str) -> list:
    with pytest.raises(LibraryInvalid) as refused:
        engine.deploy([bpmn_path(n) for n in names])
    assert str(refused.value.problems[0]) in refused.value.message
    return refused.value.problems


def _versions(db) -> list[tuple[str, int]]:
    with db.transaction() as s:
        return sorted((v.model.key, v.number) for v in s.scalars(select(ProcessVersion)))


def test_not_well_formed_xml_names_the_file_and_line(engine, db):
    [problem] = _refused(engine, "bad/not_well_formed.bpmn", "simple.bpmn")
    assert problem.file == "not_well_formed.bpmn"
    assert "not well-formed XML" in problem.message and "line 9" in problem.message
    assert count(db, ProcessModel) == 0  # the good file beside it is not deployed either


def test_xsd_invalid_file_names_the_file_the_element_and_line(engine, db):
    [problem] = _refused(engine, "bad/xsd_invalid.bpmn")
    assert problem.file == "xsd_invalid.bpmn"
    assert "meterReading" in problem.message and "line 12" in problem.message
    assert count(db, ProcessModel) == 0


def test_script_that_does_not_compile_names_the_script_task(engine, db):
    [problem] = _refused(engine, "bad/script_syntax.bpmn")
    assert (problem.file, problem.element_id) == ("script_syntax.bpmn", "compute_fee")
    assert "script does not compile" in problem.message and "fee = = hours * 40" in problem.message
    assert count(db, ProcessModel) == 0


def test_condition_that_does_not_compile_names_the_sequence_flow(engine, db):
    [problem] = _refused(engine, "bad/condition_syntax.bpmn")
    assert (problem.file, problem.element_id) == ("condition_syntax.bpmn", "flow_big")
    assert "condition does not compile" in problem.message
    assert count(db, ProcessModel) == 0


def test_form_key_without_a_form_file_names_the_task(engine, db, forms_dir):
    [problem] = _refused(engine, "bad/form_missing.bpmn")
    assert (problem.file, problem.element_id) == ("form_missing.bpmn", "record_reading")
    assert "forms/meter_reading.json" in problem.message
    assert count(db, ProcessModel) == 0

    (forms_dir / "meter_reading.json").write_text(json.dumps({"fields": [{"name": "reading", "type": "integer"}]}))
    [result] = engine.deploy([bpmn_path("bad/form_missing.bpmn")])[0]
    assert (result.key, result.version) == ("form_missing", 1)


def test_the_same_process_id_in_two_files_is_refused(engine, db):
    problems = _refused(engine, "bad/duplicate_a.bpmn", "bad/duplicate_b.bpmn")
    assert any(p.element_id == "meter_check" and "Duplicate process ID" in p.message
               and p.file in ("duplicate_a.bpmn", "duplicate_b.bpmn") for p in problems), problems
    assert count(db, ProcessModel) == 0


def test_call_activity_to_a_missing_process_names_the_call_activity(engine, db):
    problems = _refused(engine, "call_parent.bpmn")
    assert any(p.file == "call_parent.bpmn" and p.element_id == "inspection" and "call_child" in p.message
               for p in problems), [str(p) for p in problems]
    assert count(db, ProcessModel) == 0


def test_a_bad_file_reports_every_problem_at_once(engine, db):
    problems = _refused(engine, "bad/script_syntax.bpmn", "bad/condition_syntax.bpmn", "service_unknown.bpmn")
    assert {(p.file, p.element_id) for p in problems} == {
        ("script_syntax.bpmn", "compute_fee"), ("condition_syntax.bpmn", "flow_big"),
        ("service_unknown.bpmn", "query_crm")}


def test_deploying_unchanged_files_keeps_the_version(engine, deploy, db):
    [first] = deploy("simple.bpmn")
    assert (first.key, first.version, first.created) == ("simple", 1, True)
    [again] = deploy("simple.bpmn")
    assert (again.version, again.created) == (1, False)
    assert _versions(db) == [("simple", 1)]


def test_a_changed_file_makes_version_2_and_running_instances_stay_on_version_1(engine, deploy, db, tmp_path):
    deploy("simple.bpmn")
    old = engine.start("simple", {"customer": "Ann"}, "admin")
    complete(engine, old, "step_one")

    changed = tmp_path / "simple.bpmn"  # step two is gone in version 2
    text = bpmn_path("simple.bpmn").read_text()
    changed.write_text(text.replace('targetRef="step_two"', 'targetRef="end"')
                       .replace('<bpmn:incoming>flow_end</bpmn:incoming>',
                                '<bpmn:incoming>flow_one_done</bpmn:incoming>'))
    [result] = engine.deploy([changed])[0]
    assert (result.version, result.created) == (2, True)
    assert _versions(db) == [("simple", 1), ("simple", 2)]

    new = engine.start("simple", {}, "admin")
    assert engine.instance_detail(new)["version"] == 2
    complete(engine, new, "step_one")
    assert status(db, new) == "completed"

    assert engine.instance_detail(old)["version"] == 1
    assert open_elements(db, old) == ["step_two"]  # version 1's path, still there
    complete(engine, old, "step_two")
    detail = engine.instance_detail(old)
    assert (detail["status"], detail["data"]["customer"]) == ("completed", "Ann")


def test_a_refused_change_leaves_the_deployed_version_alone(engine, deploy, db, tmp_path):
    deploy("simple.bpmn")
    iid = engine.start("simple", {}, "admin")
    broken = tmp_path / "simple.bpmn"
    broken.write_text(bpmn_path("simple.bpmn").read_text().replace("</bpmn:process>", """
    <bpmn:scriptTask id="broken_script"><bpmn:script>if x</bpmn:script></bpmn:scriptTask>
  </bpmn:process>"""))

    with pytest.raises(LibraryInvalid) as refused:
        engine.deploy([broken])
    assert refused.value.problems[0].element_id == "broken_script"

    assert _versions(db) == [("simple", 1)]
    with db.transaction() as s:
        model = s.scalar(select(ProcessModel).where(ProcessModel.key == "simple"))
        assert model.latest_version.number == 1
    complete(engine, iid, "step_one")
    complete(engine, iid, "step_two")
    assert status(db, iid) == "completed"


def test_redeploying_an_older_file_makes_it_the_latest_again(engine, deploy, db, tmp_path):
    deploy("simple.bpmn")
    changed = tmp_path / "simple.bpmn"
    changed.write_text(bpmn_path("simple.bpmn").read_text().replace('name="Step two"', 'name="Step 2"'))
    assert engine.deploy([changed])[0][0].version == 2
    [back] = deploy("simple.bpmn")
    assert (back.version, back.created) == (1, False)
    iid = engine.start("simple", {}, "admin")
    assert engine.instance_detail(iid)["version"] == 1
