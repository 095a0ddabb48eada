"""Scenario tests: every *.scenario.yaml under bpmn/ as its own test case, and the runner itself.

The runner's own tests use the small library in tests/data/scenarios (a complaint with two
lanes, a form, a reminder timer, a failing script and a correlated message; a callback that
a message starts): passing/ must pass, failing/ fails in known ways, invalid/ is rejected.
"""
from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support import settings_for

from app import create_app, hotline
from app.engine import clock
from app.engine.library import load_library
from app.engine.scenario_files import (
    find_files,
    iso_duration,
    library_for,
    load_file,
    parse_duration,
    parse_signed_duration,
)
from app.engine.scenarios import ScenarioRunner, run_paths
from app.errors import InvalidInput

ROOT = Path(__file__).resolve().parent.parent
BPMN, FORMS = ROOT / "bpmn", ROOT / "forms"
DATA = Path(__file__).resolve().parent / "data" / "scenarios"
DATA_FORMS = DATA / "forms"


# --- the process library's own scenarios ---------------------------------------------------------

def _library_scenarios() -> list:
    params = []
    for file in find_files(BPMN):
        name = file.relative_to(BPMN).as_posix()
        try:
            params += [pytest.param(s, id=f"{name}::{s.name}") for s in load_file(file)]
        except InvalidInput as exc:  # a broken file is one failing case, not a collection error
            params.append(pytest.param(exc, id=f"{name}::(invalid file)"))
    return params


@pytest.fixture(scope="module")
def runner():
    with ScenarioRunner(FORMS) as r:
        yield r


@pytest.mark.parametrize("scenario", _library_scenarios())
def test_process_scenario(runner, scenario):
    if isinstance(scenario, InvalidInput):
        pytest.fail("\n".join(scenario.detail["problems"]), pytrace=False)
    result = runner.run(scenario, library_for(scenario.file))
    if not result.passed:
        history = "\n".join(f"  {e['at']} {e['kind']} {e['element_id'] or ''} ({e['actor']})" for e in result.history)
        pytest.fail(f"{result.line()}\nhistory so far:\n{history}", pytrace=False)


def test_every_process_in_the_library_has_scenarios():
    """design.md: every process in bpmn/ has scenario tests (a file named after it, or a scenario starting it)."""
    covered = {f.name.removesuffix(".scenario.yaml") for f in find_files(BPMN)}
    for file in find_files(BPMN):
        covered |= {s.start.target for s in load_file(file) if not s.start.by_message}
    processes = set(load_library([BPMN], FORMS).definitions)
    assert processes, "no processes found in bpmn/"
    assert not processes - covered, f"processes without scenario tests: {sorted(processes - covered)}"


# --- the runner ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def passing():
    return {r.scenario: r for r in run_paths(DATA / "passing", DATA_FORMS)}


@pytest.fixture(scope="module")
def failing():
    return {r.scenario: r for r in run_paths(DATA / "failing", DATA_FORMS)}


def test_passing_scenarios_pass(passing):
    assert {name: r.line() for name, r in passing.items() if not r.passed} == {}
    assert set(passing) == {
        "taken, confirmed by the customer, closed", "the reminder fires after 30 minutes",
        "bad data is refused, a failing script becomes an incident",
        "a message with the wrong ticket number reaches nobody", "a missed call starts a callback"}


FAILURES = {  # scenario: (failing step, where, difference)
    "wrong status": (2, "step 2 (expect)", "status: expected completed, got waiting"),
    "wrong open tasks": (1, "step 1 (expect)", "open tasks: expected [close], got [take_complaint]"),
    "wrong task details": (1, "step 1 (expect)", "task take_complaint: groups expected [supervisors], got [agents]; "
                                                 "task take_complaint: due_in expected PT2H, got PT1H"),
    "expected to fail but succeeds": (1, "step 1 (complete 'take_complaint' as li.na)",
                                      "succeeded, but should have failed with 'severity too high'"),
    "refused unexpectedly": (1, "step 1 (complete 'take_complaint' as zhang.min)",
                             "failed: zhang.min is not a candidate for task 1"),
    "message nobody waits for": (1, "step 1 (message 'customer.confirmed')",
                                 "failed: this process was not waiting for message 'customer.confirmed' with these "
                                 "keys; it was kept for later"),
    "path and data differ": (2, "step 2 (expect)",
                             "data.urgency: expected 3, got 50; data.missing: expected 1, but it is not set; "
                             "path: expected [start, take_complaint, confirmed], got [start, take_complaint, score] "
                             "(they differ at position 3)"),
    "end differs": (1, "end", "status: expected completed, got waiting"),
    "started by a message nothing starts on": (0, "start (start by message 'nobody.listens')",
                                               "failed: message 'nobody.listens' started no process: no deployed "
                                               "process starts on it"),
    "fails differently than expected": (1, "step 1 (complete 'take_complaint')",
                                        "failed, but not with 'division by zero': form data is invalid: severity: "
                                        "Must be greater than or equal to 0 and less than or equal to 5."),
}


def test_every_failing_scenario_is_checked(failing):
    assert set(failing) == set(FAILURES)


@pytest.mark.parametrize("name", FAILURES)
def test_a_failing_scenario_reports_its_step_and_difference(failing, name):
    result = failing[name]
    assert not result.passed
    assert (result.step, result.where, result.difference) == FAILURES[name]
    assert result.line() == f"FAIL tests/data/scenarios/failing/mistakes.scenario.yaml::{name}: " \
                            f"{FAILURES[name][1]}: {FAILURES[name][2]}"


def test_a_failure_carries_expected_actual_and_the_history_so_far(failing):
    result = failing["wrong status"]
    assert (result.expected, result.actual) == ({"status": "completed"}, {"status": "waiting"})
    assert [(e["kind"], e["element_id"]) for e in result.history if e["kind"].startswith("task_")] == [
        ("task_created", "take_complaint"), ("task_completed", "take_complaint")]
    tasks = failing["wrong task details"]
    assert tasks.actual == {"tasks": [{"task": "take_complaint", "title": "Take the complaint", "groups": ["agents"],
                                       "assignee": None, "due_in": "PT1H", "due_from_now": "PT1H", "priority": 50,
                                       "overdue": False, "escalation_level": 0}]}
    assert failing["started by a message nothing starts on"].history == []  # no instance to tell about
    assert json.loads(json.dumps(result.to_dict()))["id"].endswith("::wrong status")


def test_the_clock_is_real_again_after_a_run(passing):
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(minutes=1)


def test_an_invalid_file_names_file_scenario_and_step():
    file = DATA / "invalid" / "mistakes.scenario.yaml"
    with pytest.raises(InvalidInput) as caught:
        load_file(file)
    assert [p.removeprefix(f"{file}: ") for p in caught.value.detail["problems"]] == [
        "unknown key 'colour' in the file (allowed: process, scenarios, users)",
        "scenario 'typos', start: unknown key 'dat' in start: did you mean 'data'? (allowed: as, data, fails, keys, "
        "message, payload, process)",
        "scenario 'typos', step 1 (complete): unknown key 'wiht' in a 'complete' step: did you mean 'with'? (allowed: "
        "as, complete, fails, with)",
        "scenario 'typos', step 2 (advance): advance '15 minutes' is not a duration like PT15M, PT4H, P2D or P1DT2H",
        "scenario 'typos', step 3 (expect): unknown key 'taks' in expect: did you mean 'tasks'? (allowed: data, "
        "incidents, messages_sent, path, status, tasks)",
        "scenario 'typos', step 4 (complete): user 'wang.wei' is not declared under 'users' (declared: admin, li.na)",
        "scenario 'typos', step 5: a step does exactly one of: complete, claim, advance, message, expect "
        "(found: claim, complete)",
        "scenario 'typos', end: status 'done' is not one of: running, waiting, completed, error, suspended, "
        "terminated",
        "scenario 2: needs a 'name'",
    ]
    assert caught.value.message.startswith(f"{file}: unknown key 'colour'") and "(and 8 more)" in caught.value.message


@pytest.mark.parametrize("text, problem", [
    ("- just\n- a list\n", "the file must be a mapping (key: value), not a list"),
    ("scenarios: [\n", "not valid YAML"),
    ("scenarios: []\n", "'scenarios' must be a list with at least one scenario"),
    ("scenarios:\n  - name: a\n    end: {status: waiting}\n  - name: a\n    end: {status: waiting}\n",
     "scenario 'a': another scenario in this file has the same name"),
    ("scenarios:\n  - name: a\n    steps:\n      - complete: x\n        as: admin\n        as: admin\n",
     "the key 'as' appears twice"),
    ("scenarios:\n  - name: a\n    start: {message: m, data: {}}\n    end: {status: waiting}\n",
     "scenario 'a', start: a start by message takes 'keys' and 'payload', not 'data'"),
    ("scenarios:\n  - name: a\n    start: {payload: {}}\n    end: {status: waiting}\n",
     "scenario 'a', start: 'payload' belongs to a start by message; give 'data' here"),
    ("scenarios:\n  - name: a\n    end: {tasks: [{task: x, group: [g]}]}\n",
     "scenario 'a', end, task x: unknown key 'group' in an item of tasks: did you mean 'groups'? (allowed: assignee, "
     "due_from_now, due_in, escalation_level, groups, overdue, priority, task)"),
    ("scenarios:\n  - name: a\n    end: {tasks: [{task: x, due_in: 4h}]}\n",
     "scenario 'a', end, task x: due_in '4h' is not a duration like PT15M or PT4H"),
    ("scenarios:\n  - name: a\n    start_at: monday\n    end: {status: waiting}\n",
     "scenario 'a': start_at 'monday' is not a date and time"),
    ("scenarios:\n  - name: a\n", "scenario 'a': has neither 'steps' nor 'end': it checks nothing"),
    ("scenarios:\n  - name: a\n    steps:\n      - complete: x\n        with: [1]\n",
     "scenario 'a', step 1 (complete): 'with' must be a mapping (key: value), not a list"),
    ("scenarios:\n  - name: a\n    given: {customers: [{name: x}]}\n    end: {status: waiting}\n",
     "scenario 'a', given: customer 1 needs a 'phone'"),
    ("scenarios:\n  - name: a\n    given: {customers: [{phone: '1', age: 3}]}\n    end: {status: waiting}\n",
     "scenario 'a', given: unknown key 'age' in customer 1 (allowed: language, name, phone)"),
    ("scenarios:\n  - name: a\n    given: {orders: []}\n    end: {status: waiting}\n",
     "scenario 'a', given: unknown key 'orders' in given (allowed: customers)"),
    ("users: {li na: [g]}\nscenarios:\n  - name: a\n    end: {status: waiting}\n",
     "user name 'li na' may use letters, digits, '.', '_' and '-' only"),
])
def test_mistakes_are_named(tmp_path, text, problem):
    file = tmp_path / "broken.scenario.yaml"
    file.write_text(text)
    with pytest.raises(InvalidInput) as caught:
        load_file(file)
    assert any(p.startswith(f"{file}: ") and problem in p for p in caught.value.detail["problems"]), \
        caught.value.detail["problems"]


def test_durations():
    assert [parse_duration(t) for t in ("PT15M", "PT4H", "P2D", "P1DT2H30M", "P1W", "PT0.5S")] == [
        900, 14400, 172800, 95400, 604800, 0.5]
    assert [parse_duration(t) for t in ("P", "PT", "P1DT", "15M", "P1M", "PT-1H", 15, None)] == [None] * 8
    assert [iso_duration(s) for s in (900, 14400, 172800, 95400, 0)] == ["PT15M", "PT4H", "P2D", "P1DT2H30M", "PT0S"]
    assert [iso_duration(s) for s in (-1, -901)] == ["-PT1S", "-PT15M1S"]  # a due time already past
    assert [parse_signed_duration(t) for t in ("PT15M", "-PT1S", "-P1D", "--PT1S", "-", "soon")] == [
        900, -1, -86400, None, None, None]


def test_a_scenario_file_tests_the_nearest_library_above_it():
    assert library_for(DATA / "failing" / "mistakes.scenario.yaml") == DATA
    assert library_for(BPMN / "scenarios" / "inbound_call.scenario.yaml") == BPMN


def test_dates_stay_text_and_times_without_offset_are_local():
    [taken, reminder, *_] = load_file(DATA / "passing" / "complaint.scenario.yaml")
    assert taken.start_at == datetime(2026, 1, 5, 1, 0, tzinfo=UTC)  # default: Monday 09:00 in Beijing
    assert reminder.start_at == datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
    assert reminder.steps[3].target["data"] == {"reminded_at": "2026-03-02T06:30:01+00:00"}


# --- flask --app wsgi bpmn test ----------------------------------------------------------------------

def _invoke(tmp_path, monkeypatch, *args, bpmn_dir: Path = DATA / "passing"):
    app = create_app(settings_for(tmp_path, monkeypatch, bpmn_dir=bpmn_dir, forms_dir=DATA_FORMS))
    try:
        result = app.test_cli_runner().invoke(args=["bpmn", "test", *args])
    finally:
        hotline(app).close()
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert not (tmp_path / "hotline.db").exists(), "bpmn test touched the configured database"
    return result


def test_cli_runs_the_bpmn_folder_by_default(tmp_path, monkeypatch):
    result = _invoke(tmp_path, monkeypatch)
    lines = result.stdout.splitlines()
    assert result.exit_code == 0, result.output
    assert lines[-1] == "5 passed, 0 failed"
    assert all(line.startswith("PASS tests/data/scenarios/passing/") for line in lines[:-1]), lines


def test_cli_failures_exit_1_with_one_line_each(tmp_path, monkeypatch):
    result = _invoke(tmp_path, monkeypatch, str(DATA / "failing"))
    lines = result.stdout.splitlines()
    assert result.exit_code == 1
    assert lines[-1] == f"0 passed, {len(FAILURES)} failed"
    assert "FAIL tests/data/scenarios/failing/mistakes.scenario.yaml::wrong status: step 2 (expect): " \
           "status: expected completed, got waiting" in lines
    assert len(lines) == len(FAILURES) + 1


def test_cli_json(tmp_path, monkeypatch):
    result = _invoke(tmp_path, monkeypatch, str(DATA / "failing" / "mistakes.scenario.yaml"), "--json")
    out = json.loads(result.stdout)
    assert result.exit_code == 1
    assert (out["passed"], out["failed"]) == (0, len(FAILURES))
    wrong = next(r for r in out["results"] if r["scenario"] == "wrong status")
    assert (wrong["step"], wrong["expected"], wrong["actual"]) == (2, {"status": "completed"}, {"status": "waiting"})
    assert wrong["history"][0]["kind"] == "instance_started"


def test_cli_reports_an_invalid_file_and_goes_on(tmp_path, monkeypatch):
    both = tmp_path / "both"
    (both / "a").mkdir(parents=True)
    (both / "a" / "bad.scenario.yaml").write_text((DATA / "invalid" / "mistakes.scenario.yaml").read_text())
    (both / "b.scenario.yaml").write_text((DATA / "passing" / "missed_call.scenario.yaml").read_text())
    result = _invoke(tmp_path, monkeypatch, str(both), "--library", str(DATA))
    lines = result.stdout.splitlines()
    assert result.exit_code == 1
    assert lines[0].startswith(f"FAIL {both / 'a' / 'bad.scenario.yaml'}::(invalid file): unknown key 'colour'")
    assert lines[1:] == [f"PASS {both / 'b.scenario.yaml'}::a missed call starts a callback", "1 passed, 1 failed"]


def test_cli_without_scenarios(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _invoke(tmp_path, monkeypatch, bpmn_dir=empty)
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [f"no scenario files (*.scenario.yaml) under {empty}", "0 passed, 0 failed"]


def test_a_given_customer_that_cannot_be_registered_fails_the_scenario_naming_it(tmp_path):
    text = ("process: inbound_call\nscenarios:\n  - name: bad customer\n"
            "    given: {customers: [{name: X, phone: '12'}]}\n    end: {status: waiting}\n")
    [scenario] = load_file(_write(tmp_path, text))
    with ScenarioRunner(FORMS) as r:
        result = r.run(scenario, BPMN)
    assert not result.passed and result.where.startswith("start")
    assert "given customer 1: '12' is not a valid phone number" in result.difference, result.difference


def _write(tmp_path, text: str) -> Path:
    path = tmp_path / "x.scenario.yaml"
    path.write_text(text)
    return path


# --- open tasks: priority, overdue, escalation level, group, agent, due time ------------------------
# The SLA escalation (bpmn/escalation.bpmn) changes these on a late task; a scenario checks them
# under `tasks:`. bpmn/ has the reminder (inbound_call: level 1 after 15 minutes, 2 after 30); the
# reassigning patterns with a new due time live in tests/data/bpmn and run here on a small library.

ESCALATED_CALL = """\
process: inbound_call
users: {li.na: [hotline], zhang.min: [hotline-supervisors]}
scenarios:
"""
ESCALATED_CALL_STEPS = """\
    start: {as: li.na, data: {channel: phone}}
    steps:
      - claim: take_call
        as: li.na
      - advance: PT15M
      - expect:
          tasks: [{task: take_call, %s}]
"""
RIGHT = ("groups: [hotline], assignee: li.na, priority: 51, overdue: true, escalation_level: 1, due_in: PT15M, "
         "due_from_now: -PT1S")
WRONG = {  # scenario: (the expectation, the difference reported)
    "wrong priority": ("priority: 52", "task take_call: priority expected 52, got 51"),
    "wrong overdue flag": ("overdue: false", "task take_call: overdue expected false, got true"),
    "wrong escalation level": ("escalation_level: 2", "task take_call: escalation_level expected 2, got 1"),
    "wrong group": ("groups: [hotline-supervisors]",
                    "task take_call: groups expected [hotline-supervisors], got [hotline]"),
    "wrong agent": ("assignee: zhang.min", "task take_call: assignee expected zhang.min, got li.na"),
    "released, it says, but it is not": ("assignee: null", "task take_call: assignee expected nobody, got li.na"),
    "wrong due time": ("due_from_now: PT15M", "task take_call: due_from_now expected PT15M, got -PT1S"),
    "no due date, it says": ("due_from_now: null", "task take_call: due_from_now expected no due date, got -PT1S"),
    "wrong due time from its creation": ("due_in: PT14M", "task take_call: due_in expected PT14M, got PT15M"),
    "two wrong at once": ("priority: 50, escalation_level: 0",
                          "task take_call: priority expected 50, got 51; "
                          "task take_call: escalation_level expected 0, got 1"),
}


@pytest.fixture(scope="module")
def escalated_call(tmp_path_factory):
    """The call intake's late take_call, checked right and in every wrong way: results by name."""
    file = tmp_path_factory.mktemp("escalated") / "escalated_call.scenario.yaml"
    scenarios = {"all details right": RIGHT, **{name: want for name, (want, _) in WRONG.items()}}
    file.write_text(ESCALATED_CALL + "".join(f"  - name: {name}\n" + ESCALATED_CALL_STEPS % want
                                             for name, want in scenarios.items()))
    return file, {r.scenario: r for r in run_paths(file, FORMS, library=BPMN)}


def test_the_details_of_an_escalated_task_can_be_expected(escalated_call):
    _, results = escalated_call
    assert results["all details right"].passed, results["all details right"].line()


@pytest.mark.parametrize("name", WRONG)
def test_a_wrong_task_detail_fails_naming_scenario_step_and_field(escalated_call, name):
    file, results = escalated_call
    result = results[name]
    assert not result.passed
    assert result.line() == f"FAIL {file}::{name}: step 3 (expect): {WRONG[name][1]}"
    [actual] = result.actual["tasks"]
    assert {k: v for k, v in actual.items() if k not in ("task", "title")} == {
        "groups": ["hotline"], "assignee": "li.na", "priority": 51, "overdue": True, "escalation_level": 1,
        "due_in": "PT15M", "due_from_now": "-PT1S"}


@pytest.mark.parametrize("item, problem", [
    ("{task: take_call, priorty: 51}",
     "scenario 'a', end, task take_call: unknown key 'priorty' in an item of tasks: did you mean 'priority'? "
     "(allowed: assignee, due_from_now, due_in, escalation_level, groups, overdue, priority, task)"),
    ("{task: take_call, candidate_groups: [hotline]}",
     "scenario 'a', end, task take_call: unknown key 'candidate_groups' in an item of tasks: did you mean 'groups'?"),
    ("{task: take_call, level: 1}",
     "scenario 'a', end, task take_call: unknown key 'level' in an item of tasks: did you mean 'escalation_level'?"),
    ("{task: take_call, overdue: late}", "scenario 'a', end, task take_call: overdue 'late' must be true or false"),
    ("{task: take_call, priority: high}",
     "scenario 'a', end, task take_call: priority 'high' is not a whole number like 2"),
    ("{task: take_call, escalation_level: -1}",
     "scenario 'a', end, task take_call: escalation_level -1 is not a whole number like 2"),
    ("{task: take_call, escalation_level: true}",
     "scenario 'a', end, task take_call: escalation_level True is not a whole number like 2"),
    ("{task: take_call, due_from_now: soon}",
     "scenario 'a', end, task take_call: due_from_now 'soon' is not a duration like PT15M or PT4H (-PT5M: due 5 "
     "minutes ago; null: no due date)"),
    ("{task: take_call, due_in: -PT1S}",
     "scenario 'a', end, task take_call: due_in '-PT1S' is not a duration like PT15M or PT4H (counted from the "
     "task's creation; null: no due date)"),
    ("{task: take_call, due_at: PT1S}",
     "scenario 'a', end, task take_call: unknown key 'due_at' in an item of tasks: did you mean 'due_from_now'?"),
    ("{priority: 2}", "scenario 'a', end: 'task' must be a name or text, not empty"),
])
def test_a_mistake_in_a_task_expectation_is_an_error_before_anything_runs(tmp_path, item, problem):
    file = _write(tmp_path, f"process: inbound_call\nscenarios:\n  - name: a\n    end: {{tasks: [{item}]}}\n")
    with pytest.raises(InvalidInput) as caught:
        load_file(file)
    assert any(p.startswith(f"{file}: {problem}") for p in caught.value.detail["problems"]), \
        caught.value.detail["problems"]
    [result] = run_paths(file, FORMS, library=BPMN)  # a typo fails the run, it never passes unchecked
    assert not result.passed and result.scenario == "(invalid file)" and problem in result.difference


ESCALATING = """\
users: {li.na: [hotline], zhang.min: [hotline-supervisors]}
scenarios:
  - name: a late repair is reminded in place, then handed to the supervisors with a new due time
    start: {process: escalating_reminder, data: {reassign: true, escalation_due_in: PT4H}}
    steps:
      - claim: repair
        as: li.na
      - expect:
          tasks:
            - {task: repair, groups: [hotline], assignee: li.na, priority: 50, overdue: false,
               escalation_level: 0, due_in: PT2H}
      - advance: PT1H
      - expect:
          tasks: [{task: repair, overdue: false, escalation_level: 0, due_in: PT2H, due_from_now: PT1H}]
      - advance: PT1H
      - expect:
          tasks:
            - {task: repair, groups: [hotline-supervisors], assignee: null, priority: 51, overdue: true,
               escalation_level: 1, due_from_now: PT4H}
      - complete: repair
        as: li.na
        fails: not a candidate
      - advance: PT2H
      - expect:
          tasks:
            - {task: repair, groups: [hotline-supervisors], assignee: null, priority: 52, overdue: true,
               escalation_level: 2, due_from_now: PT4H}
      - complete: repair
        as: zhang.min
    end:
      status: completed
      tasks: []

  - name: an interrupting breach reopens the complaint for the supervisors
    start: {process: escalating_reassign}
    steps:
      - claim: handle_complaint
        as: li.na
      - advance: PT1H
      - expect:
          tasks:
            - {task: handle_complaint, groups: [hotline-supervisors], assignee: null, priority: 51, overdue: true,
               escalation_level: 1, due_in: PT1H, due_from_now: PT1H}
"""


def test_reassignment_and_a_new_due_time_can_be_expected(tmp_path):
    library = tmp_path / "library"
    library.mkdir()
    for source in (DATA.parent / "bpmn" / "escalating_reminder.bpmn", DATA.parent / "bpmn" / "escalating_reassign.bpmn",
                   BPMN / "escalation.bpmn"):
        shutil.copy(source, library)
    (library / "escalating.scenario.yaml").write_text(ESCALATING)
    results = run_paths(library, FORMS)
    assert [r.line() for r in results if not r.passed] == []
    assert len(results) == 2

