"""The grades in nbgrader's gradebook, checked through nbgrader itself: its API, the data
formgrader shows, and the real `nbgrader export` (README, "For staff")."""
import csv
import json
import os
import subprocess
import sys

import pytest

from assignments.lstm.samples import SAMPLES
from autograder.outputs.gradebook import course_id
from autograder.samples import write_submission
from tests.conftest import REPO, run_cli

BY_ID = {s.student_id: s for s in SAMPLES}
STUDENTS = ("correct", "blank_release", "bug_last_step_weights", "broken_json")
ANSWER = "The cell state is updated additively, so its gradient is not squashed at every step."


def venv_env():
    """nbgrader's commands need the environment's console scripts (alembic) on PATH."""
    return {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}


def with_written_answer(notebook, grade_id, text):
    for cell in notebook["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            cell["source"] = text
            return notebook
    raise AssertionError(f"the release notebook has no cell {grade_id}")


@pytest.fixture(scope="module")
def course(tmp_path_factory, config):
    """Four submissions graded into a gradebook of a fresh course folder; the correct one also
    answers the first written question."""
    tmp = tmp_path_factory.mktemp("gradebook")
    root, course = tmp / "submitted", tmp / "course"
    for student in STUDENTS:
        content = BY_ID[student].build(config)
        if student == "correct":
            content = with_written_answer(content, next(iter(config.manual)), ANSWER)
        write_submission(root, student, config.name, config.notebook, content)
    done = run_cli("grade", str(root), "--assignment", "lstm", "--out", str(tmp / "out"),
                   "--gradebook", str(course / "gradebook.db"), "--jobs", "2")
    assert done.returncode == 0, done.stderr
    results = {p.stem: json.loads(p.read_text()) for p in (tmp / "out" / "results").glob("*.json")}
    return root, course, tmp / "out", results, done


def gradebook(course):
    from nbgrader.api import Gradebook
    return Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id(course))


def test_every_student_has_a_submission_with_the_graders_points(course, config):
    _, folder, _, results, _ = course
    with gradebook(folder) as gb:
        assert sorted(s.id for s in gb.students) == sorted(STUDENTS)
        for student in STUDENTS:
            notebook = gb.find_submission_notebook("lstm", "lstm", student)
            scores = {g.name: g.auto_score for g in notebook.grades}
            expected = {e["id"]: e["points"] for e in results[student]["exercises"]}
            assert {e: scores[f"check_{e}"] for e in config.points} == pytest.approx(expected)
            assert expected == pytest.approx(BY_ID[student].expected)


def test_written_answers_wait_for_a_manual_grade_in_formgrader(course, config):
    _, folder, _, _, _ = course
    first, *others = config.manual
    with gradebook(folder) as gb:
        answered = gb.find_grade(first, "lstm", "lstm", "correct")
        assert answered.needs_manual_grade and answered.manual_score is None and answered.auto_score is None
        assert answered.max_score == config.manual[first]
        for name in others:   # untouched answers: nbgrader's "No response.", 0, nothing to grade
            grade = gb.find_grade(name, "lstm", "lstm", "correct")
            assert grade.auto_score == 0 and not grade.needs_manual_grade
        assert gb.find_submission_notebook("lstm", "lstm", "correct").needs_manual_grade
        assert not gb.find_submission_notebook("lstm", "lstm", "blank_release").needs_manual_grade


def test_formgrader_finds_the_submitted_notebooks(course, config):
    """What formgrader's submission list shows, from nbgrader's own API on the course folder."""
    from nbgrader.apps.api import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    _, folder, _, _, _ = course
    api = NbGraderAPI(coursedir=CourseDirectory(root=str(folder), course_id=course_id(folder)))
    # formgrader's list of notebooks to grade: those it can open (nbgrader leaves out missing files)
    listed = {n["student"]: n for n in api.get_notebook_submissions("lstm", "lstm")}
    assert set(listed) == set(STUDENTS) - {"broken_json"}
    assert listed["correct"]["needs_manual_grade"]
    assert not listed["bug_last_step_weights"]["needs_manual_grade"]
    for student in ("correct", "blank_release", "bug_last_step_weights"):
        shown = folder / "autograded" / student / "lstm" / config.notebook
        notebook = json.loads(shown.read_text())
        assert any(ANSWER in "".join(c["source"]) for c in notebook["cells"]) == (student == "correct")
    # the unreadable notebook has its submission (Manage Students, export), at zero, and nothing to open
    assert not (folder / "autograded" / "broken_json").exists()
    submissions = {s["student"]: s for s in api.get_submissions("lstm")}
    assert set(submissions) == set(STUDENTS)
    assert submissions["broken_json"]["score"] == 0 and not submissions["broken_json"]["needs_manual_grade"]


def test_check_cells_show_the_graders_verdict(course):
    _, folder, _, _, _ = course
    notebook = json.loads((folder / "autograded" / "bug_last_step_weights" / "lstm" / "lstm.ipynb").read_text())
    cell = next(c for c in notebook["cells"]
                if c["metadata"].get("nbgrader", {}).get("grade_id") == "check_lstm_backward")
    text = "".join("".join(o.get("text", "")) for o in cell["outputs"])
    assert "partly correct, 2 / 5" in text and "dWx" in text
    with gradebook(folder) as gb:
        comment = gb.find_comment("lstm_backward", "lstm", "lstm", "bug_last_step_weights")
        assert comment.auto_comment.startswith("Autograder: partly correct (2 / 5).")


def test_nbgrader_export_totals_are_auto_plus_manual(course, config):
    root, folder, out, results, _ = course
    first = next(iter(config.manual))
    with gradebook(folder) as gb:
        gb.find_grade(first, "lstm", "lstm", "correct").manual_score = 1.5
        gb.db.commit()
    done = subprocess.run([os.path.join(os.path.dirname(sys.executable), "nbgrader"), "export"], cwd=folder,
                          env=venv_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = {r["student_id"]: r for r in csv.DictReader((folder / "nbgrader_grades.csv").open())}
    assert set(rows) == set(STUDENTS)
    for student in STUDENTS:
        manual = 1.5 if student == "correct" else 0.0
        assert float(rows[student]["score"]) == pytest.approx(results[student]["score"] + manual)
        assert float(rows[student]["max_score"]) == config.max_score + sum(config.manual.values())
    assert (out / "grades.csv").is_file()   # the autograder's own table is a different file

    # regrading keeps the TA's manual score, still graded: the answer did not change
    again = run_cli("grade", str(root), "--assignment", "lstm", "--out", str(out),
                    "--gradebook", str(folder / "gradebook.db"), "--jobs", "2")
    assert again.returncode == 0, again.stderr
    with gradebook(folder) as gb:
        grade = gb.find_grade(first, "lstm", "lstm", "correct")
        assert grade.manual_score == 1.5 and not grade.needs_manual_grade
        assert gb.find_submission("lstm", "correct").score == pytest.approx(config.max_score + 1.5)


def test_the_cli_says_where_the_gradebook_is_and_how_to_open_formgrader(course):
    _, folder, _, _, done = course
    assert "Gradebook:" in done.stdout and "gradebook.db" in done.stdout
    assert "jupyter lab" in done.stdout and "Formgrader" in done.stdout
    assert (folder / "nbgrader_config.py").is_file()


def test_no_gradebook_writes_none(tmp_path, config):
    root = tmp_path / "submitted"
    write_submission(root, "blank", config.name, config.notebook, BY_ID["blank_release"].build(config))
    repo_book = REPO / "gradebook.db"
    before = repo_book.stat().st_mtime_ns if repo_book.exists() else None
    done = run_cli("grade", str(root), "--assignment", "lstm", "--out", str(tmp_path / "out"), "--no-gradebook")
    assert done.returncode == 0, done.stderr
    assert not list(tmp_path.rglob("gradebook.db")) and "Gradebook:" not in done.stdout
    assert (repo_book.stat().st_mtime_ns if repo_book.exists() else None) == before
