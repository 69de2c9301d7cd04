"""The TA's loop off the happy path (issue 22), through the CLI: a run interrupted by a signal
at a point the test chooses, two runs at once, two classes into one output folder, a regrade
after manual grading then `feedback`, a late student past zero_after. After each, grades.csv,
results/, feedback/ and the gradebook must agree with each other (agree()), and the CLI must
have said what happened."""
import csv
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from assignments.lstm.samples import release, reference_cells, solved, with_body
from autograder.outputs.gradebook import course_id
from autograder.outputs.late import format_time
from tests.conftest import REPO, run_cli
from tests.test_ta_loop import answered

LATE = "200"          # submitted after zero_after: every point goes to the late penalty


def gradebook(db):
    from nbgrader.api import Gradebook
    return Gradebook(f"sqlite:///{db}", course_id(db.parent))


def write(root, student, notebook, when=None):
    folder = root / student / "lstm"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "lstm.ipynb").write_text(json.dumps(notebook))
    if when is not None:
        (folder / "timestamp.txt").write_text(format_time(when) + "\n")


def snapshot(out, db):
    """Every byte of the outputs a run may change (lock files aside)."""
    files = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*"))
             if p.is_file() and not p.name.endswith(".lock")}
    return files, db.read_bytes()


def feedback_numbers(page):
    """(header score, final line score or None, late penalty shown or None) of a feedback page."""
    header = re.search(r"<b>Score: ([\d.]+) / ([\d.]+)</b>", page)
    final = re.search(r"Final score: ([\d.]+) / ([\d.]+)", page)
    late = re.search(r"late penalty ([\d.]+) point", page)
    return (header.groups(), final.groups() if final else None, late.group(1) if late else None)


def agree(config, out, db):
    """grades.csv, results/, feedback/ and the gradebook hold the same students and the same
    numbers; each feedback page's header, late paragraph and final line agree."""
    table = {r["student_id"]: r for r in csv.DictReader((out / "grades.csv").open())}
    results = {p.stem: json.loads(p.read_text()) for p in (out / "results").glob("*.json")}
    pages = {p.stem: p.read_text() for p in (out / "feedback").glob("*.html")}
    with gradebook(db) as gb:
        book = {s.student.id: s for s in gb.find_assignment("lstm").submissions}
        auto = {sid: sum(g.auto_score or 0 for n in s.notebooks for g in n.grades if g.cell.name.startswith("check_"))
                for sid, s in book.items()}
        manual = {sid: sum(float(g.manual_score if g.manual_score is not None else g.auto_score or 0)
                           for n in s.notebooks for g in n.grades if g.cell.name in config.manual)
                  for sid, s in book.items()}
        penalty = {sid: float(s.late_submission_penalty or 0) for sid, s in book.items()}
    assert set(table) == set(results) == set(pages) == set(book)
    for student, row in table.items():
        result = results[student]
        assert float(row["total"]) == pytest.approx(result["score"] - result["late"]["penalty"]), student
        assert auto[student] == pytest.approx(result["score"]), student
        (score, full), final, late = feedback_numbers(pages[student])
        expected = max(0.0, auto[student] + manual[student] - penalty[student])
        assert float(score) == pytest.approx(expected) and float(full) == config.full_points, student
        assert final is not None and float(final[0]) == pytest.approx(expected), student
        assert (late is None and not penalty[student]) or float(late) == pytest.approx(penalty[student]), student
    return table, results, pages


@pytest.fixture(scope="module")
def klass(tmp_path_factory, config):
    """A class of two, graded once: 100 on time with an answer, 200 past zero_after."""
    tmp = tmp_path_factory.mktemp("offpath")
    root, out, db = tmp / "submitted", tmp / "grades", tmp / "course" / "gradebook.db"
    write(root, "100", answered(solved()(config)), config.late.due - timedelta(days=1))
    write(root, LATE, answered(solved()(config)), config.late.zero_after + timedelta(hours=2))
    done = run_cli("grade", str(root), "--assignment", "lstm", "--out", str(out), "--gradebook", str(db),
                   "--jobs", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    return tmp, root, out, db


def grade_args(root, out, db, *more):
    return ["grade", str(root), "--assignment", "lstm", "--out", str(out), "--gradebook", str(db), *more]


def descendants(pid):
    """Every live process below pid (student processes in their own sessions included)."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def interrupt(args, when, signum):
    """Run the CLI, send it `signum` as soon as its stderr shows every text of `when` (the
    progress bar names each student whose result is in); returns (exit status,
    stderr, seconds from the signal to the exit, the processes below it at the signal)."""
    process = subprocess.Popen([sys.executable, "-m", "autograder", *args], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    seen = bytearray()
    reader = threading.Thread(target=lambda: [seen.extend(chunk) for chunk in iter(lambda: process.stderr.read1(4096), b"")])
    reader.start()
    stdout = []
    threading.Thread(target=lambda: stdout.append(process.stdout.read())).start()
    deadline = time.monotonic() + 300
    while not all(text in seen.decode(errors="replace") for text in when):
        assert process.poll() is None and time.monotonic() < deadline, seen.decode(errors="replace")
        time.sleep(0.05)
    below = descendants(process.pid)
    process.send_signal(signum)
    sent = time.monotonic()
    code = process.wait(timeout=120)
    took = time.monotonic() - sent
    reader.join()
    return code, seen.decode(errors="replace"), took, below


def slow(config, cells=12):
    """A notebook whose top-level cells each loop until their time limit: a minute of grading."""
    return release(config, reference_cells(), ["while True:\n    pass"] * cells)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_while_grading_stops_everything_and_writes_nothing(klass, config, signum):
    tmp, root, out, db = klass
    before = snapshot(out, db)
    write(root, "300", slow(config))                 # still running when the others are done
    try:
        code, stderr, took, below = interrupt(grade_args(root, out, db, "--jobs", "2"), ["100: 18/18", f"{LATE}: 18/18"], signum)
        assert code == 128 + signum, stderr
        assert stderr.rstrip().splitlines()[-1] == "interrupted: nothing written, rerun grade"
        assert "Traceback" not in stderr
        assert took < 30, took                       # not the slow notebook's minute
        assert below, stderr                         # workers and student processes were running ...
        time.sleep(1)
        assert not [pid for pid in below if alive(pid)]   # ... and none outlives the run
        assert snapshot(out, db) == before           # grades.csv, results, feedback, gradebook: as they were
        assert not list(out.glob(".incoming")) and not list(db.parent.glob("*.incoming"))
    finally:
        shutil.rmtree(root / "300")
    agree(config, out, db)


def test_interrupt_in_the_gradebook_phase_keeps_outputs_in_step(klass, config):
    """Whenever the signal lands after grading, the outputs are either all the previous run's
    or all this run's, and the last line says which."""
    tmp, root, out, db = klass
    before = snapshot(out, db)
    changed = solved(lstm_backward=with_body("lstm_backward", "raise NotImplementedError()"))(config)
    old = (root / "100" / "lstm" / "lstm.ipynb").read_text()
    write(root, "100", answered(changed), config.late.due - timedelta(days=1))
    try:
        code, stderr, _, _ = interrupt(grade_args(root, out, db, "--jobs", "2"), ["gradebook:"], signal.SIGINT)
        last = stderr.rstrip().splitlines()[-1]
        assert code == 130 and "Traceback" not in stderr, stderr
        table, _, _ = agree(config, out, db)
        if last == "interrupted: nothing written, rerun grade":
            assert snapshot(out, db) == before
        else:
            assert last.startswith("interrupted: this run's outputs were complete and are kept")
            assert float(table["100"]["lstm_backward"]) == 0
    finally:
        (root / "100" / "lstm" / "lstm.ipynb").write_text(old)
    done = run_cli(*grade_args(root, out, db, "--jobs", "2"))
    assert done.returncode == 0, done.stderr
    assert float(agree(config, out, db)[0]["100"]["lstm_backward"]) == 5


def test_a_second_run_on_the_same_outputs_is_refused(klass, config):
    tmp, root, out, db = klass
    before = snapshot(out, db)
    for lock in (out / ".autograder.lock", db.with_name(db.name + ".lock")):
        with open(lock, "a") as handle:          # as a run in progress holds it
            fcntl.flock(handle, fcntl.LOCK_EX)
            done = run_cli(*grade_args(root, out, db))
        assert done.returncode == 2 and "another run is writing to" in done.stderr, done.stderr
        assert snapshot(out, db) == before


def test_a_second_class_into_the_same_outputs_is_refused(klass, config, tmp_path):
    tmp, root, out, db = klass
    before = snapshot(out, db)
    other = tmp_path / "moodle-class"
    write(other, "900001", solved()(config))
    done = run_cli(*grade_args(other, out, db))
    assert done.returncode == 2
    assert f"{out} holds results of 2" in done.stderr and "the gradebook" in done.stderr
    assert "one output folder and gradebook hold one class" in done.stderr
    done = run_cli(*grade_args(other, tmp_path / "own-out", db))            # its own folder, the same gradebook
    assert done.returncode == 2 and f"the gradebook {db} holds 2" in done.stderr, done.stderr
    assert snapshot(out, db) == before
    # its own folder and gradebook: graded; and the flag keeps the other students in every output
    done = run_cli(*grade_args(other, tmp_path / "own-out", tmp_path / "own" / "gradebook.db"))
    assert done.returncode == 0, done.stderr
    kept = tmp_path / "kept"
    shutil.copytree(out, kept)
    shutil.copy(db, tmp_path / "kept.db")
    done = run_cli(*grade_args(other, kept, tmp_path / "kept.db", "--other-students"))
    assert done.returncode == 0, done.stderr
    table, _, _ = agree(config, kept, tmp_path / "kept.db")
    assert sorted(table) == sorted(["100", LATE, "900001"])


def test_regrade_after_manual_grading_keeps_manual_grades_in_feedback(klass, config):
    tmp, root, out, db = klass
    with gradebook(db) as gb:
        for student in ("100", LATE):
            grade = gb.find_grade("q_cell_state", "lstm", "lstm", student)
            grade.manual_score, grade.needs_manual_grade = 2.0, False
            gb.find_comment("q_cell_state", "lstm", "lstm", student).manual_comment = "Right: additive."
        gb.db.commit()
    done = run_cli(*grade_args(root, out, db, "--jobs", "2"))       # a full regrade
    assert done.returncode == 0, done.stderr
    assert "run `feedback` to rebuild them" in done.stdout
    _, _, pages = agree(config, out, db)
    assert "Right: additive." in pages["100"] and "Final score: 20 / 24" in pages["100"]
    assert "Score: 20 / 24</b> (auto-graded exercises 18 + written answers 2)" in pages["100"]
    # past zero_after: the penalty is the whole score, in the header, the late paragraph and the last line
    page = pages[LATE]
    assert "Score: 0 / 24</b> (auto-graded exercises 18 + written answers 2 - late penalty 20)" in page
    assert "late penalty 20 point(s)" in page and "Final score: 0 / 24" in page
    assert re.search(r"submitted \d{4}-\d\d-\d\d \d\d:\d\d UTC,", page)       # to the minute
    # the TA's comments are not in the colour of a failure
    assert "table.exercises tr:not(.passed)" in page and "\ntr:not(.passed)" not in page
    # a changed answer: its manual grade is pending, and the page says so
    write(root, "100", answered(solved()(config), "A new answer."), config.late.due - timedelta(days=1))
    done = run_cli(*grade_args(root, out, db, "--jobs", "2"))
    assert done.returncode == 0, done.stderr
    done = run_cli("feedback", "--assignment", "lstm", "--out", str(out), "--gradebook", str(db))
    assert done.returncode == 0, done.stderr
    _, _, pages = agree(config, out, db)
    assert "2 (pending regrade: your answer changed since it was graded) / 2" in pages["100"]
    assert "Provisional: 1 grade(s) wait for a TA." in pages["100"]


def test_feedback_refuses_a_gradebook_without_the_graded_students(klass, config, tmp_path):
    tmp, root, out, db = klass
    other = tmp_path / "other"
    write(other, "555", solved()(config))
    done = run_cli(*grade_args(other, tmp_path / "other-out", tmp_path / "other.db"))
    assert done.returncode == 0, done.stderr
    pages = {p: p.read_bytes() for p in (out / "feedback").iterdir()}
    done = run_cli("feedback", "--assignment", "lstm", "--out", str(out), "--gradebook", str(tmp_path / "other.db"))
    assert done.returncode == 2
    assert f"the gradebook {tmp_path / 'other.db'} has no submission of 2 of the 2 student(s)" in done.stderr
    assert {p: p.read_bytes() for p in (out / "feedback").iterdir()} == pages


def test_messages_point_the_right_way(klass, config, tmp_path):
    tmp, root, out, db = klass
    (tmp_path / "submissions.zip").write_bytes(b"PK\x05\x06" + b"\0" * 18)      # an empty zip, as downloaded
    done = run_cli("grade", str(tmp_path / "submissions.zip"), "--assignment", "lstm", "--out", str(tmp_path / "o"))
    assert done.returncode == 2 and "is a zip file" in done.stderr
    assert f"python -m autograder collect {tmp_path / 'submissions.zip'} --assignment lstm --into ROOT" in done.stderr
    done = run_cli("grade", str(out), "--assignment", "lstm", "--out", str(tmp_path / "o"))
    assert done.returncode == 2 and f"{out} is an output folder of `grade`" in done.stderr
    assert f"collect {out}" not in done.stderr             # not "collect the output folder"
    done = run_cli("grade", str(root), "--assignment", "LSTM", "--out", str(tmp_path / "o"))
    assert done.returncode == 2 and "no assignment 'LSTM'" in done.stderr and "(it has: lstm;" in done.stderr
    import dataclasses
    from autograder import cli
    from autograder.process.sandbox import GraderError
    changed = dataclasses.replace(config, points={**config.points, "sigmoid": 2.0})
    with pytest.raises(GraderError, match="points live in the source notebook's cell metadata"):
        cli.grade_command(changed, root, tmp_path / "o", 1, "auto", quiet=True)


CANVAS_ROSTER = ("Student,ID,SIS User ID,SIS Login ID,Section,Chapter 2: RNN (48100),Chapter 3: LSTM (48213)\n"
                 "    Points Possible,,,,,10,24\n"
                 "\"Zip, Zoe\",700001,S1,zzip,A,,\n\"Py, Pat\",700002,S2,ppy,A,,\n\"Renamed, Ray\",700003,S3,rren,B,,\n")


def test_the_loop_from_another_folder_on_data_outside_the_repository(config, tmp_path):
    """collect -> grade -> feedback -> export, run in a folder outside the checkout on relative
    paths: a notebook inside a .zip, a .py upload and a renamed notebook reach the student's
    result and page; the roster's names reach the gradebook; the export fills the roster's own
    column for the assignment, as Canvas names it."""
    import io
    import zipfile
    here = tmp_path / "course-data"
    here.mkdir()
    assert REPO not in here.parents
    (here / "roster.csv").write_text(CANVAS_ROSTER)
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        archive.writestr("work/lstm.ipynb", json.dumps(solved()(config)))
    with zipfile.ZipFile(here / "download.zip", "w") as archive:
        archive.writestr("zipzoe_700001_1_my-lstm.zip", inner.getvalue())
        archive.writestr("pypat_700002_2_lstm.py", "def sigmoid(x): ...\n")
        archive.writestr("renamedray_700003_3_LSTM final.ipynb", json.dumps(solved()(config)))

    def cli(*args):
        return run_cli(*args, cwd=here)
    done = cli("collect", "download.zip", "--assignment", "lstm", "--into", "submitted", "--roster", "roster.csv")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "--out submitted-grades --gradebook submitted-grades/gradebook.db" in done.stdout
    graded = cli("grade", "submitted", "--assignment", "lstm", "--out", "submitted-grades",
                 "--gradebook", "submitted-grades/gradebook.db", "--jobs", "2")
    assert graded.returncode == 0, graded.stdout + graded.stderr
    out = here / "submitted-grades"
    table, results, pages = agree(config, out, out / "gradebook.db")
    assert results["700001"]["status"] == "graded" and results["700001"]["score"] == 18
    assert "unpacked from my-lstm.zip" in results["700001"]["notes"] and "unpacked from my-lstm.zip" in pages["700001"]
    assert results["700002"]["status"] == "missing"
    assert "the submission holds lstm.py, not a notebook: submit lstm.ipynb" in results["700002"]["reason"]
    assert "lstm.py, not a notebook" in pages["700002"]
    assert "LSTM final.ipynb renamed to lstm.ipynb" in pages["700003"]
    # the terminal table is grades.csv's (late column and total), and --student prints that student only
    row = next(line for line in graded.stdout.splitlines() if line.startswith("700001 "))
    assert row.split()[-1] == table["700001"]["total"] and row.split()[-2] == table["700001"]["late_penalty"]
    one = cli("grade", "submitted", "--assignment", "lstm", "--out", "submitted-grades",
              "--gradebook", "submitted-grades/gradebook.db", "--student", "700003", "--jobs", "1")
    assert one.returncode == 0, one.stderr
    assert "700003 " in one.stdout and "700001 " not in one.stdout and "700002 " not in one.stdout
    with gradebook(out / "gradebook.db") as gb:
        assert (gb.find_student("700001").first_name, gb.find_student("700001").last_name) == ("Zoe", "Zip")
    done = cli("feedback", "--assignment", "lstm", "--out", "submitted-grades",
               "--gradebook", "submitted-grades/gradebook.db")
    assert done.returncode == 0, done.stderr
    done = cli("export", "--assignment", "lstm", "--format", "canvas", "--out", "canvas-import.csv",
               "--gradebook", "submitted-grades/gradebook.db", "--roster", "roster.csv")
    assert done.returncode == 0, done.stderr
    exported = list(csv.reader((here / "canvas-import.csv").open()))
    assert exported[0][-1] == "Chapter 3: LSTM (48213)" and len(exported[0]) == 6
    assert {r[1]: r[-1] for r in exported[2:]} == {"700001": "18", "700002": "0", "700003": "18"}
    done = cli("export", "--assignment", "lstm", "--format", "canvas", "--out", "named.csv", "--column",
               "Chapter 3: LSTM (48213)", "--gradebook", "submitted-grades/gradebook.db")
    assert done.returncode == 0 and next(csv.reader((here / "named.csv").open()))[-1] == "Chapter 3: LSTM (48213)"
    # a Moodle worksheet given as the Canvas roster: refused, and accepted only when told
    (here / "worksheet.csv").write_text("Identifier,Full name,Email address\nParticipant 700001,Zoe Zip,z@x.org\n"
                                        "Participant 700002,Pat Py,p@x.org\nParticipant 700003,Ray R,r@x.org\n")
    done = cli("export", "--assignment", "lstm", "--format", "canvas", "--out", "wrong.csv",
               "--gradebook", "submitted-grades/gradebook.db", "--roster", "worksheet.csv")
    assert done.returncode == 2 and "is not Canvas's gradebook export" in done.stderr
    assert "looks like Moodle's grading worksheet" in done.stderr and not (here / "wrong.csv").exists()
    done = cli("export", "--assignment", "lstm", "--format", "canvas", "--out", "wrong.csv",
               "--gradebook", "submitted-grades/gradebook.db", "--roster", "worksheet.csv", "--any-roster")
    assert done.returncode == 0 and "Note: the roster worksheet.csv is not Canvas's" in done.stdout
    ignored = subprocess.run(["git", "check-ignore", "-q", "canvas-import.csv"], cwd=REPO)
    assert ignored.returncode == 0                   # the README's own output name


def test_the_canvas_column_is_found_by_the_assignments_canvas_id(config, tmp_path):
    import dataclasses
    from autograder.integrations.lms.export import canvas_column
    from autograder.integrations.lms.roster import RosterError
    roster = tmp_path / "roster.csv"
    roster.write_text("Student,ID,SIS User ID,SIS Login ID,Section,LSTM quiz (48000),Chapter 3: LSTM (48213)\n")
    with_id = dataclasses.replace(config, canvas_id="48213")
    assert canvas_column(with_id, roster) == "Chapter 3: LSTM (48213)"
    assert canvas_column(with_id, roster, "Other (1)") == "Other (1)"              # --column wins
    with pytest.raises(RosterError, match="several columns that may be 'lstm'"):
        canvas_column(config, roster)                                          # two candidates, no id
    with pytest.raises(RosterError, match="no column for the assignment's Canvas id 99"):
        canvas_column(dataclasses.replace(config, canvas_id="99"), roster)
    roster.write_text("Student,ID,SIS User ID,SIS Login ID,Section,Chapter 2: RNN (47000)\n")
    assert canvas_column(config, roster) == "lstm"                             # Canvas will create it
