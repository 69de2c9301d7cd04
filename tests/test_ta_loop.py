"""The TA's loop (README, "For TAs"), on a small class built here: a Canvas zip (LATE_, a renamed
notebook, a student with two files, a stray PDF) and a Moodle folder, collected into one ROOT
with a roster; graded through the CLI; written answers graded by hand through nbgrader's API;
regraded; feedback rebuilt; exported for Canvas, Moodle and as csv."""
import contextlib
import csv
import io
import json
import os
import subprocess
import sys
import zipfile
from datetime import timedelta

import pytest

from assignments.lstm.samples import solved, with_body
from autograder.outputs.gradebook import JUPYTER_CONFIG, course_id
from tests.conftest import run_cli

ANSWER = "The cell state is updated additively, so its gradient is not squashed at every step."
ROSTER = ("Student,ID,SIS User ID,SIS Login ID,Section,lstm (777)\n"
          "    Points Possible,,,,,24\n"
          "\"Smith, John\",100001,S1,jsmith,A\n\"Late, Larry\",100002,S2,llate,A\n"
          "\"Doe, Jane\",100003,S3,jdoe,B\n\"Twice, Tom\",100004,S4,ttwice,B\n\"Absent, Amy\",100005,S5,aabsent,B\n")
MOODLE_ROSTER = ("Identifier,Full name,Email address,Status,Grade,Maximum Grade\n"
                 "Participant 200001,Ada Lovelace,ada@example.org,Submitted,,24\n"
                 "Participant 200002,Alan Turing,alan@example.org,Submitted,,24\n")


def answered(notebook, text=ANSWER, grade_id="q_cell_state"):
    for cell in notebook["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            cell["source"] = text
            return notebook
    raise AssertionError(grade_id)


def notebook_bytes(notebook):
    return json.dumps(notebook, indent=1).encode()


def zip_entry(archive, name, content, moment):
    info = zipfile.ZipInfo(name, date_time=moment.timetuple()[:6])
    archive.writestr(info, content)


def gradebook(folder):
    from nbgrader.api import Gradebook
    return Gradebook(f"sqlite:///{folder / 'gradebook.db'}", course_id(folder))


def rows(path):
    return {r["student_id"]: r for r in csv.DictReader(path.open())}


@pytest.fixture(scope="module")
def loop(tmp_path_factory, config):
    """Download -> collect -> grade -> manual grades; returns the paths and the CLI outputs."""
    tmp = tmp_path_factory.mktemp("taloop")
    due = config.late.due
    correct = solved()(config)
    blank = solved(lstm_backward=with_body("lstm_backward", "raise NotImplementedError()"))(config)
    canvas = tmp / "submissions.zip"
    with zipfile.ZipFile(canvas, "w") as archive:
        zip_entry(archive, "smithjohn_100001_500001_lstm.ipynb", notebook_bytes(answered(correct)), due - timedelta(days=1))
        zip_entry(archive, "latelarry_LATE_100002_500002_lstm.ipynb", notebook_bytes(correct),
                  due + timedelta(hours=26))
        zip_entry(archive, "doejane_100003_500003_lstm (1).ipynb", notebook_bytes(correct), due - timedelta(hours=2))
        zip_entry(archive, "twicetom_100004_500004_lstm.ipynb", notebook_bytes(blank), due - timedelta(days=3))
        zip_entry(archive, "twicetom_100004_500104_lstm-1.ipynb", notebook_bytes(correct), due - timedelta(days=2))
        zip_entry(archive, "twicetom_100004_500104_notes.pdf", b"%PDF-1.4", due - timedelta(days=2))
    moodle = tmp / "moodle"
    for name, content, moment in (("Ada Lovelace_200001", answered(correct), due - timedelta(days=1)),
                                  ("Alan Turing_200002", correct, config.late.zero_after + timedelta(hours=1))):
        folder = moodle / f"{name}_assignsubmission_file_"
        folder.mkdir(parents=True)
        (folder / "lstm.ipynb").write_bytes(notebook_bytes(content))
        os.utime(folder / "lstm.ipynb", (moment.timestamp(), moment.timestamp()))
    (moodle / "Ada Lovelace_200001_assignsubmission_onlinetext_").mkdir()
    (moodle / "Ada Lovelace_200001_assignsubmission_onlinetext_" / "onlinetext.html").write_text("<p>hi</p>")
    (tmp / "roster.csv").write_text(ROSTER)
    (tmp / "moodle_roster.csv").write_text(MOODLE_ROSTER)
    root, course = tmp / "submitted", tmp / "course"
    collected = [run_cli("collect", str(canvas), "--assignment", "lstm", "--into", str(root),
                         "--roster", str(tmp / "roster.csv")),
                 run_cli("collect", str(moodle), "--assignment", "lstm", "--into", str(root))]
    for done in collected:
        assert done.returncode == 0, done.stdout + done.stderr
    graded = run_cli("grade", str(root), "--assignment", "lstm", "--out", str(tmp / "out"),
                     "--gradebook", str(course / "gradebook.db"), "--jobs", "2")
    assert graded.returncode == 0, graded.stdout + graded.stderr
    return tmp, root, course, collected, graded


def test_collect_places_canvas_and_moodle_downloads_in_nbgrader_layout(loop, config):
    tmp, root, _, (canvas, moodle), _ = loop
    assert (root / ".roster.csv").read_text() == ROSTER                  # for the gradebook's names
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["100001", "100002", "100003", "100004",
                                                                    "100005", "200001", "200002"]
    for student in ("100001", "100002", "100003", "100004", "200001", "200002"):
        assert (root / student / "lstm" / "lstm.ipynb").is_file(), student
        assert (root / student / "lstm" / "timestamp.txt").is_file(), student
    assert not (root / "100005" / "lstm").exists()            # on the roster, nothing submitted
    assert "100005" in canvas.stdout and "nothing submitted" in canvas.stdout
    # the newest of two kept, the older named; the renamed one said so; the PDF reported
    kept = json.loads((root / "100004" / "lstm" / "lstm.ipynb").read_text())
    assert "raise NotImplementedError()" not in "".join("".join(c["source"]) for c in kept["cells"]
                                                        if "def lstm_backward" in "".join(c["source"]))
    assert "twicetom_100004_500004_lstm.ipynb: 100004 has a newer notebook" in canvas.stdout
    assert "lstm (1).ipynb renamed to lstm.ipynb" in canvas.stdout
    assert "twicetom_100004_500104_notes.pdf: not a notebook" in canvas.stdout
    assert "marked LATE by Canvas" in canvas.stdout
    assert "onlinetext" in moodle.stdout and "not a file" in moodle.stdout
    # times: the zip entries' and the files' (UTC), in nbgrader's format
    due = config.late.due
    late_stamp = (root / "100002" / "lstm" / "timestamp.txt").read_text().strip()
    assert late_stamp == (due + timedelta(hours=26)).strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def test_collect_exits_nonzero_when_nothing_is_placed(tmp_path):
    (tmp_path / "download").mkdir()
    (tmp_path / "download" / "readme.txt").write_text("nothing here")
    done = run_cli("collect", str(tmp_path / "download"), "--assignment", "lstm", "--into", str(tmp_path / "root"))
    assert done.returncode != 0 and "readme.txt: not a notebook" in done.stdout


def test_grades_csv_has_every_student_and_the_late_penalties(loop, config):
    tmp, _, _, _, graded = loop
    table = list(csv.reader((tmp / "out" / "grades.csv").open()))
    assert table[0] == ["student_id", *config.points, "late_penalty", "total", "max_score"]
    got = rows(tmp / "out" / "grades.csv")
    assert sorted(got) == ["100001", "100002", "100003", "100004", "100005", "200001", "200002"]
    full = config.max_score
    # 26 h late: 2 started days x 10 % of 24 points = 4.8; after zero_after: everything
    expected = {"100001": (0, full), "100002": (-4.8, full - 4.8), "100003": (0, full), "100004": (0, full),
                "100005": (0, 0), "200001": (0, full), "200002": (-full, 0)}
    for student, (penalty, total) in expected.items():
        assert float(got[student]["late_penalty"]) == pytest.approx(penalty), student
        assert float(got[student]["total"]) == pytest.approx(total), student
        assert float(got[student]["total"]) == pytest.approx(sum(float(v) for v in table[1:][0][1:-2]) * 0
                                                             + sum(float(got[student][c]) for c in
                                                                   [*config.points, "late_penalty"]))
    assert "graded 6, missing 1" in graded.stdout
    late = json.loads((tmp / "out" / "results" / "100002.json").read_text())["late"]
    assert late["penalty"] == pytest.approx(4.8) and late["seconds_late"] == pytest.approx(26 * 3600)
    late_page = (tmp / "out" / "feedback" / "100002.html").read_text()
    assert "late penalty 4.8" in late_page and "Score: 13.2 / 24" in late_page


def test_gradebook_has_due_date_timestamps_and_late_penalty(loop, config):
    _, _, course, _, _ = loop
    with gradebook(course) as gb:
        assert gb.find_assignment("lstm").duedate == config.late.due.replace(tzinfo=None)
        late = gb.find_submission("lstm", "100002")
        assert late.timestamp is not None and late.total_seconds_late == pytest.approx(26 * 3600)
        assert late.late_submission_penalty == pytest.approx(4.8)
        assert gb.find_submission("lstm", "100001").late_submission_penalty == 0
    for student in ("100001", "100003", "100004"):
        assert (course / "autograded" / student / "lstm" / "timestamp.txt").is_file()
    assert "--allow-root" in loop[4].stdout or os.geteuid() != 0
    assert "gradebook: 7/7" in loop[4].stderr             # the gradebook phase's progress bar


def free_port():
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def chromium():
    """The system chromium and the venv's playwright, or the reason the browser test cannot run."""
    if not os.path.exists("/usr/bin/chromium"):
        return None, "no /usr/bin/chromium (`make test` installs it with apt-get where it can)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return None, "playwright is not installed (pyproject's test extras pin it)"
    return "/usr/bin/chromium", None


@contextlib.contextmanager
def jupyter_server(course, course_config=True):
    """The course's Jupyter server as `grade` tells a TA to run it (with the repository's
    jupyter_server_config.json; course_config=False: a plain `jupyter server`), on localhost
    without a token; yields its base URL and the process."""
    port = free_port()
    jupyter = os.path.join(os.path.dirname(sys.executable), "jupyter")
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    server = subprocess.Popen([jupyter, "server", *([f"--config={JUPYTER_CONFIG}"] if course_config else []),
                               "--no-browser", f"--port={port}", "--ip=127.0.0.1",
                               "--IdentityProvider.token=", "--ServerApp.password=",
                               *(["--allow-root"] if os.geteuid() == 0 else [])],
                              cwd=course, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.terminate()
        server.wait(timeout=30)


@contextlib.contextmanager
def browser_page():
    """A page of headless Chromium (the system's, driven by playwright), or the test skips."""
    executable, why = chromium()
    if executable is None:
        pytest.skip(why)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        try:
            yield browser.new_page()
        finally:
            browser.close()


def open_when_up(page, url, server):
    """page.goto(url), retried while the server starts (it takes a few seconds)."""
    for _ in range(120):
        try:
            return page.goto(url, timeout=5000)
        except Exception:
            if server.poll() is not None:
                raise AssertionError(server.stderr.read())
            page.wait_for_timeout(500)
    raise AssertionError(f"{url} did not answer")


def test_formgrader_in_a_browser_lists_every_collected_submission(loop):
    """Headless Chromium on formgrader's 'Manage Submissions' page, served by jupyter on localhost."""
    _, root, course, _, _ = loop
    with browser_page() as page, jupyter_server(course) as (base, server):
        open_when_up(page, f"{base}/formgrader/manage_submissions/lstm", server)
        page.wait_for_selector("text=100003", timeout=60000)
        text = page.inner_text("body")
    for student in sorted(p.name for p in root.iterdir() if p.is_dir()):
        assert student in text, student
    assert "Twice, Tom" in text and "Smith, John" in text       # the roster's names, not "None, None"


def test_manual_grades_regrade_export_and_feedback(loop, config, tmp_path):
    tmp, root, course, _, _ = loop
    book = str(course / "gradebook.db")
    with gradebook(course) as gb:
        assert gb.find_grade("q_cell_state", "lstm", "lstm", "100001").needs_manual_grade
        for student, score in (("100001", 1.5), ("200001", 2.0)):
            grade = gb.find_grade("q_cell_state", "lstm", "lstm", student)
            grade.manual_score = score
            grade.needs_manual_grade = False
            gb.find_comment("q_cell_state", "lstm", "lstm", student).manual_comment = "Good: additive update."
        override = gb.find_grade("check_lstm_backward", "lstm", "lstm", "100003")
        override.manual_score = 4.0
        gb.db.commit()
    # 100003 breaks lstm_backward (its auto score changes under the TA's override); 200001 rewrites its answer
    broken = solved(lstm_backward=with_body("lstm_backward", "raise NotImplementedError()"))(config)
    (root / "100003" / "lstm" / "lstm.ipynb").write_text(json.dumps(broken))
    (root / "200001" / "lstm" / "lstm.ipynb").write_text(json.dumps(answered(solved()(config), "Another answer.")))
    again = run_cli("grade", str(root), "--assignment", "lstm", "--out", str(tmp / "out"), "--gradebook", book,
                    "--jobs", "2")
    assert again.returncode == 0, again.stderr
    assert "100003 check_lstm_backward: your override 4 was given when the auto score was 5; it is now 0" in again.stdout
    assert "200001 q_cell_state: the answer changed since it was graded by hand" in again.stdout
    assert "100001" not in again.stdout.split("Manual grades to look at again")[1]
    with gradebook(course) as gb:
        kept = gb.find_grade("q_cell_state", "lstm", "lstm", "100001")
        assert kept.manual_score == 1.5 and not kept.needs_manual_grade
        assert gb.find_grade("q_cell_state", "lstm", "lstm", "200001").needs_manual_grade
        stale = gb.find_grade("check_lstm_backward", "lstm", "lstm", "100003")
        assert stale.manual_score == 4.0 and stale.auto_score == 0 and stale.needs_manual_grade

    # one student regraded into the class outputs: the other rows stay
    before = rows(tmp / "out" / "grades.csv")
    (root / "100004" / "lstm" / "lstm.ipynb").write_text(json.dumps(broken))
    one = run_cli("grade", str(root), "--assignment", "lstm", "--out", str(tmp / "out"), "--gradebook", book,
                  "--student", "100004", "--jobs", "1")
    assert one.returncode == 0, one.stderr
    after = rows(tmp / "out" / "grades.csv")
    assert set(after) == set(before)
    assert float(after["100004"]["lstm_backward"]) == 0 and float(before["100004"]["lstm_backward"]) == 5
    assert {s: r for s, r in after.items() if s != "100004"} == {s: r for s, r in before.items() if s != "100004"}

    # exports: auto + manual - penalty, every roster student
    full = config.full_points
    canvas = tmp_path / "canvas.csv"
    done = run_cli("export", "--assignment", "lstm", "--format", "canvas", "--out", str(canvas), "--gradebook", book,
                   "--roster", str(tmp / "roster.csv"), "--allow-unlisted")     # this ROOT mixes two downloads
    assert done.returncode == 0, done.stderr
    assert "2 student(s) of the gradebook are not on the roster (200001, 200002): written without names" in done.stdout
    table = list(csv.reader(canvas.open()))
    assert table[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "lstm (777)"]
    assert table[1][0].strip() == "Points Possible" and float(table[1][5]) == full
    canvas_rows = {r[1]: r for r in table[2:]}
    assert canvas_rows["100001"][:5] == ["Smith, John", "100001", "S1", "jsmith", "A"]
    assert float(canvas_rows["100001"][5]) == pytest.approx(18 + 1.5)
    assert float(canvas_rows["100002"][5]) == pytest.approx(18 - 4.8)
    assert float(canvas_rows["100003"][5]) == pytest.approx(13 + 4)           # the TA's override counts
    assert float(canvas_rows["100005"][5]) == 0
    moodle = tmp_path / "moodle.csv"
    done = run_cli("export", "--assignment", "lstm", "--format", "moodle", "--out", str(moodle), "--gradebook", book,
                   "--roster", str(tmp / "moodle_roster.csv"), "--allow-unlisted")
    assert done.returncode == 0, done.stderr
    moodle_rows = {r["Identifier"]: r for r in csv.DictReader(moodle.open())}
    assert moodle_rows["Participant 200001"]["Full name"] == "Ada Lovelace"
    assert float(moodle_rows["Participant 200001"]["Grade"]) == pytest.approx(18 + 2.0)
    assert float(moodle_rows["Participant 200002"]["Grade"]) == 0                   # after zero_after
    assert float(moodle_rows["Participant 200002"]["Maximum Grade"]) == full
    assert moodle_rows["Participant 100005"]["Feedback comments"] == "No submission."     # on the roster only
    assert moodle_rows["Participant 200001"]["Feedback comments"].startswith("Score 20 / 24")
    plain = tmp_path / "grades.csv"
    done = run_cli("export", "--assignment", "lstm", "--format", "csv", "--out", str(plain), "--gradebook", book)
    assert done.returncode == 0, done.stderr
    table = list(csv.reader(plain.open()))
    assert table[0] == ["student_id", *config.points, *config.manual, "late_penalty", "total", "max_score"]
    plain_rows = rows(plain)
    assert float(plain_rows["100001"]["q_cell_state"]) == 1.5
    assert float(plain_rows["100002"]["late_penalty"]) == pytest.approx(-4.8)
    assert float(plain_rows["100001"]["total"]) == pytest.approx(19.5)

    # feedback pages rebuilt with the TA's points, comment and the final score
    done = run_cli("feedback", "--assignment", "lstm", "--out", str(tmp / "out"), "--gradebook", book)
    assert done.returncode == 0, done.stderr
    page = (tmp / "out" / "feedback" / "100001.html").read_text()
    assert "Good: additive update." in page and "Final score: 19.5 / 24" in page

    # nbgrader's own feedback commands work on this gradebook
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    nbgrader = os.path.join(os.path.dirname(sys.executable), "nbgrader")
    exchange = tmp_path / "exchange"
    exchange.mkdir()
    for command in ("generate_feedback", "release_feedback"):
        done = subprocess.run([nbgrader, command, "lstm", f"--Exchange.root={exchange}"], cwd=course, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, command + done.stdout + done.stderr
    assert (course / "feedback" / "100001" / "lstm" / "lstm.html").is_file()
    assert list(exchange.rglob("*.html"))


def test_zip_times_prefer_the_utc_extended_timestamp(tmp_path):
    """A zip entry's DOS time has no zone; the 'extended timestamp' field (0x5455) is UTC."""
    import struct
    from datetime import datetime, timezone
    from autograder.integrations.lms.collect import zip_time
    moment = datetime(2026, 12, 12, 3, 4, 5, tzinfo=timezone.utc)
    info = zipfile.ZipInfo("a.ipynb", date_time=(2026, 12, 11, 22, 4, 4))    # a local time, five hours off
    info.extra = struct.pack("<HHBi", 0x5455, 5, 1, int(moment.timestamp()))
    assert zip_time(info) == moment
    info.extra = b""
    assert zip_time(info) == datetime(2026, 12, 11, 22, 4, 4, tzinfo=timezone.utc)


def test_collect_reads_flat_folders_and_nbgrader_layout(tmp_path):
    """CONTRACT section 4: `<student>.ipynb` and nbgrader's own layout (its timestamp.txt kept)."""
    download = tmp_path / "download" / "wrapper"
    (download / "bob" / "lstm").mkdir(parents=True)
    (download / "alice.ipynb").write_text("{}")
    (download / "bob" / "lstm" / "my work.ipynb").write_text("{}")
    (download / "bob" / "lstm" / "timestamp.txt").write_text("2026-12-01 10:00:00.000000 UTC\n")
    (download / ".DS_Store").write_text("")
    done = run_cli("collect", str(tmp_path / "download"), "--assignment", "lstm", "--into", str(tmp_path / "root"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "root" / "alice" / "lstm" / "lstm.ipynb").is_file()
    assert (tmp_path / "root" / "bob" / "lstm" / "lstm.ipynb").is_file()
    assert (tmp_path / "root" / "bob" / "lstm" / "timestamp.txt").read_text().startswith("2026-12-01 10:00:00")
    assert ".DS_Store: operating-system or Jupyter clutter" in done.stdout
