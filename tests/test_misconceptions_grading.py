"""The catalogue against the real grader: every misconception graded as a student's notebook.

Each entry of assignments/lstm/misconceptions becomes a submission: the release notebook with
the reference in every answer cell, then the entry's functions pasted over theirs
(autograder.judging.mutants.entry_notebook). All of them go through Grader.grade (sandboxed student
processes) at once, each under two student ids, so with two sets of hidden inputs. Checked:

- it loses points on exactly the exercises AFFECTS lists and keeps every other point;
- each exercise it loses points on names that entry in the feedback (so no two entries
  look alike on an exercise they both affect);
- correct work written in other styles (assignments/lstm/styles) and the plain reference
  get full marks and are never given a misconception;
- a second mistake is still charged: the backward judged against a named forward
  misconception passes only when it is that misconception's own backward.
"""
import pytest

from autograder.judging import mutants
from tests.catalogue_notebooks import CATALOGUE, STYLES, TWO_MISTAKES, student_ids, style_id


@pytest.fixture(scope="module")
def graded(catalogue_graded):
    """All catalogue entries, styles and the control, graded once (tests/conftest.py)."""
    return catalogue_graded


def exercises_of(result):
    return {e["id"]: e for e in result["exercises"]}


@pytest.mark.parametrize("entry", CATALOGUE, ids=[e.name for e in CATALOGUE])
def test_entry_loses_points_on_exactly_affects(graded, entry):
    _, results = graded
    for student in student_ids(entry.name):
        result = results[student]
        assert result["status"] == "graded" and not result["cell_errors"], result["cell_errors"]
        lost = {k for k, e in exercises_of(result).items() if e["points"] < e["max_points"]}
        assert lost == set(entry.affects), (student, {k: exercises_of(result)[k]["message"] for k in lost})


@pytest.mark.parametrize("entry", CATALOGUE, ids=[e.name for e in CATALOGUE])
def test_entry_is_named_on_every_exercise_it_affects(graded, entry):
    _, results = graded
    for student in student_ids(entry.name):
        for ex_id, exercise in exercises_of(results[student]).items():
            named = (exercise["misconception"] or {}).get("name")
            if ex_id in entry.affects:
                assert named == entry.name, (student, ex_id, named, exercise["message"])
                assert exercise["misconception"]["hint"] == entry.hint
            else:
                assert named is None and exercise["status"] == "passed", (student, ex_id, exercise)


@pytest.mark.parametrize("style", STYLES, ids=[s.name for s in STYLES])
def test_correct_work_in_another_style_gets_full_marks_and_no_diagnosis(graded, config, style):
    _, results = graded
    for student in student_ids(style_id(style)):
        result = results[student]
        assert result["score"] == config.max_score, [(e["id"], e["message"]) for e in result["exercises"]]
        for exercise in result["exercises"]:
            assert exercise["status"] == "passed" and exercise["misconception"] is None, exercise
            assert not exercise["modified_inputs"]
        assert not result["cell_errors"]


def test_styles_cover_every_exercise(config):
    assert len(STYLES) >= 3
    assert {name for s in STYLES for name in s.sources} == set(config.points)


def test_reference_notebook_gets_full_marks(graded, config):
    _, results = graded
    result = results[mutants.CONTROL]
    assert result["score"] == config.max_score
    assert all(e["misconception"] is None for e in result["exercises"])


def test_mutants_report_rates_are_perfect(graded, config):
    """The report `python -m autograder mutants` prints, built from the same grades."""
    _, results = graded
    report = mutants.Report([mutants.outcome(results[e.name], e.name, e.affects) for e in CATALOGUE],
                            mutants.outcome(results[mutants.CONTROL], mutants.CONTROL, ()), 0.0, 0)
    assert report.control_ok
    assert report.detection_rate == 1.0 and report.diagnosis_accuracy == 1.0
    text = mutants.format_report(report, config)
    n = len(CATALOGUE)
    assert f"detection rate:     {n}/{n} = 100.0%" in text
    assert "diagnosis accuracy:" in text and "BAD" not in text
    assert all(e.name in text for e in CATALOGUE)


def test_mutants_run_and_main(graded, config, monkeypatch, capsys):
    grader, _ = graded
    report = mutants.run(config, jobs=2, grader=grader, catalogue=CATALOGUE[:2])
    assert [e.name for e in report.entries] == [e.name for e in CATALOGUE[:2]]
    assert report.control_ok and report.detection_rate == 1.0 and report.diagnosis_accuracy == 1.0
    monkeypatch.setattr(mutants, "run", lambda *args, **kwargs: report)
    assert mutants.main(config, 2) == 0
    out = capsys.readouterr().out
    assert "100.0%" in out and CATALOGUE[0].name in out


def test_a_wrong_affects_is_reported(graded, config):
    """The report flags an entry whose AFFECTS disagrees with the grader, and a wrong name."""
    _, results = graded
    entry = next(e for e in CATALOGUE if len(e.affects) >= 2)
    wrong = mutants.outcome(results[entry.name], entry.name, entry.affects[:1] + ("sigmoid",))
    assert not wrong.detected
    renamed = mutants.outcome(results[entry.name], "another_entry", entry.affects)
    assert renamed.detected and renamed.diagnosed == []
    report = mutants.Report([wrong, renamed], mutants.outcome(results[mutants.CONTROL], mutants.CONTROL, ()), 0.0, 0)
    text = mutants.format_report(report, config)
    assert text.count("BAD") == 2 and "(sigmoid kept its points)" in text and "! named" in text
    # 4 affected pairs: only the first exercise of `wrong` both lost points and named its entry
    assert report.detection_rate == 0.5 and report.diagnosis_accuracy == 0.25


def test_a_second_mistake_on_top_of_a_named_one_still_costs_points(graded):
    """A tanh forget gate (named on lstm_gates) and backward passes that drop dnext_c: the
    backward exercises are not excused by the forward's diagnosis."""
    _, results = graded
    exercises = exercises_of(results[TWO_MISTAKES])
    lost = {k: e["points"] for k, e in exercises.items() if e["points"] < e["max_points"]}
    assert set(lost) == {"lstm_gates", "lstm_step_backward", "lstm_backward"}, lost
    assert lost["lstm_gates"] == 1.5 and exercises["lstm_gates"]["misconception"]["name"] == "forget_gate_tanh"
