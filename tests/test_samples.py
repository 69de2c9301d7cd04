"""Every bundled sample gets exactly the grade a careful TA would give (assignments/lstm/samples.py)."""
import pytest

from assignments.lstm.samples import SAMPLES
from solutions import lstm as reference

BY_ID = {s.student_id: s for s in SAMPLES}


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.student_id)
def test_sample_gets_the_expected_grade(demo, sample):
    _, results, _ = demo
    result = results[sample.student_id]
    got = {e["id"]: e["points"] for e in result["exercises"]}
    assert got == pytest.approx(sample.expected, abs=1e-4), sample.description
    assert result["status"] == sample.status
    assert result["score"] == pytest.approx(sum(sample.expected.values()), abs=1e-3)


def test_correct_work_in_any_style_is_never_given_a_misconception(demo):
    _, results, _ = demo
    for student in ("correct", "correct_other_style", "hang_at_top_level", "sys_exit_cell"):
        for exercise in results[student]["exercises"]:
            assert exercise["status"] == "passed" and exercise["misconception"] is None, (student, exercise)


@pytest.mark.parametrize("student, entry", [
    ("bug_forget_gate_tanh", "forget_gate_tanh"), ("bug_drops_dnext_c", "backward_drops_dnext_c"),
    ("bug_last_step_weights", "bptt_weight_grads_last_step_only"), ("bug_naive_sigmoid", "sigmoid_naive"),
    ("bug_clip_in_place", "clip_in_place")])
def test_typical_bugs_are_named(demo, student, entry):
    _, results, _ = demo
    lost = [e for e in results[student]["exercises"] if e["points"] < e["max_points"]]
    assert lost
    for exercise in lost:
        assert exercise["misconception"]["name"] == entry, exercise


@pytest.mark.parametrize("student, status, words", [
    ("blank_release", "not_implemented", "not implemented yet"),
    ("hang_in_clip", "timeout", "did not return"),
    ("memory_hog", "crashed", "out of memory"),
    ("os_exit", "crashed", "exited with status 3"),
    ("broken_json", "missing", "not valid JSON"),
])
def test_failures_are_explained(demo, student, status, words):
    _, results, _ = demo
    failing = [e for e in results[student]["exercises"] if e["status"] == status]
    assert failing and all(words in e["message"] for e in failing), results[student]["exercises"]


def test_a_hang_or_crash_costs_only_the_function_it_stopped(demo):
    _, results, _ = demo
    for student, broken in (("hang_in_clip", "clip_grad_norm"), ("memory_hog", "lstm_backward"),
                            ("os_exit", "lstm_step_backward")):
        for exercise in results[student]["exercises"]:
            assert (exercise["points"] == 0) == (exercise["id"] == broken), (student, exercise)


def test_top_level_problems_are_reported_as_cell_errors(demo):
    _, results, _ = demo
    assert any("StudentTimeout" in c["error"] for c in results["hang_at_top_level"]["cell_errors"])
    assert any("SystemExit" in c["error"] for c in results["sys_exit_cell"]["cell_errors"])


def test_escape_attempts_find_nothing(demo):
    """The sample tries to import/read the reference, list folders, read /proc, run a program and
    connect; had any worked its functions would return the reference's answers."""
    out, results, _ = demo
    assert results["reads_reference"]["score"] == 0
    assert all(e["status"] == "not_implemented" for e in results["reads_reference"]["exercises"])
    feedback = (out / "feedback" / "reads_reference.html").read_text()
    assert "def lstm_forward" not in feedback


def test_expected_grades_are_consistent_with_points(config):
    for sample in SAMPLES:
        assert set(sample.expected) == set(config.points)
        assert all(0 <= sample.expected[e] <= config.points[e] for e in config.points)
    assert BY_ID["correct"].expected == config.points
    assert callable(reference.lstm_forward)


def test_a_renamed_notebook_is_graded_with_a_note(demo):
    """CONTRACT section 2: `lstm (1).ipynb`, the only notebook there, is graded and says so."""
    out, results, _ = demo
    result = results["renamed_notebook"]
    assert result["status"] == "graded" and result["score"] == result["max_score"]
    assert any("graded lstm (1).ipynb" in n for n in result["notes"])
    assert "graded lstm (1).ipynb" in (out / "feedback" / "renamed_notebook.html").read_text()
