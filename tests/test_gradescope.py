"""The Gradescope autograder, run exactly as Gradescope runs it: the zip unzipped into a
temporary /autograder/source, run_autograder copied to /autograder and executed as root with the
project's Python on PATH, the notebook in submission/, submission_metadata.json, then
results/results.json read back. It must grade like the local grader, exercise by exercise, and
no notebook may read the answers, forge the result, patch the engine or stall it."""
import ast
import concurrent.futures
import errno
import inspect
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

from assignments.lstm.samples import SAMPLES, reference_cells, release, with_body
from autograder.grade import Grader
from autograder.integrations.gradescope import DEFAULT_VISIBILITY, FAILED, LOCK_FILE, NOT_READ, to_gradescope
from autograder.process.channel import GRACE_SECONDS
from autograder.process.sandbox import SKIP_ENV, bubblewrap_works
from solutions import lstm as reference
from tests.conftest import REPO, run_cli
from tools.gradescope_spec import problems

BY_ID = {s.student_id: s for s in SAMPLES}
FUNCTIONS = tuple(reference_cells())
VENV_BIN = os.path.dirname(sys.executable)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("gradescope")
    done = run_cli("gradescope", "--assignment", "lstm", "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out / "lstm-gradescope.zip"


# ---------------------------------------------------------------- the simulation

def autograder_tree(zip_path, notebook, users=("4242",), file_name="lstm.ipynb", limits=None, settings=None):
    """A fresh /autograder: source/ (the zip), run_autograder, submission/, metadata, results/.

    notebook: a dict (written as JSON), bytes, or None (nothing uploaded); limits/settings:
    changes to the zip's grading.yml (as a TA would edit it before zipping)."""
    root = Path(tempfile.mkdtemp(prefix="gradescope-root-", dir="/tmp"))
    os.chmod(root, 0o755)    # like Gradescope's /autograder: other users may pass through
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(root / "source")
        for info in zf.infolist():
            os.chmod(root / "source" / info.filename, info.external_attr >> 16)
    if limits or settings:
        path = root / "source" / "grading.yml"
        data = yaml.safe_load(path.read_text())
        data["assignments"]["lstm"]["limits"].update(limits or {})
        data["assignments"]["lstm"]["gradescope"].update(settings or {})
        path.write_text(yaml.safe_dump(data))
    shutil.copy(root / "source" / "run_autograder", root / "run_autograder")
    for folder in ("submission", "results"):
        (root / folder).mkdir(mode=0o755)
    if isinstance(notebook, dict):
        (root / "submission" / file_name).write_text(json.dumps(notebook, indent=1))
    elif notebook is not None:
        (root / "submission" / file_name).write_bytes(notebook)
    (root / "submission_metadata.json").write_text(json.dumps({
        "id": 1, "created_at": "2026-11-27T12:00:00.000000-08:00", "assignment": {"title": "LSTM"},
        "users": [{"id": u, "name": f"Student {u}", "email": f"{u}@example.edu"} for u in users]}))
    return root


def skip_without_a_sandbox():
    """The zip never grades unsandboxed: without bubblewrap and without root (the uid mode, which
    makes this Python reachable by its uids wherever it lies), grading tests have nothing to run in."""
    if not bubblewrap_works() and os.geteuid() != 0:
        pytest.skip("no sandbox to grade in here (bubblewrap, or root for the uid mode)")


@pytest.fixture(params=["bubblewrap", "uid"])
def mode(request):
    """The sandbox mode run_autograder is to pick. "uid" (Gradescope's containers, where
    bubblewrap cannot create namespaces) needs root."""
    if request.param == "bubblewrap" and not bubblewrap_works():
        pytest.skip("bubblewrap does not work here")
    if request.param == "uid" and os.geteuid() != 0:
        pytest.skip("the uid mode needs root")
    return request.param


def run_autograder(root, timeout=120, mode=None):
    """Execute ROOT/run_autograder as root in ROOT -> (results.json as a dict, seconds).

    mode "uid": bubblewrap is ruled out, as on Gradescope."""
    skip_without_a_sandbox()
    env = {"PATH": VENV_BIN + os.pathsep + os.environ["PATH"], "AUTOGRADER_ROOT": str(root), "HOME": "/root",
           "AUTOGRADER_PYTHON": sys.executable}
    if mode == "uid":
        env[SKIP_ENV] = "bubblewrap"
    started = time.monotonic()
    done = run_script(root / "run_autograder", root, env, timeout)
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((root / "results" / "results.json").read_text())
    if mode:
        assert results["extra_data"]["sandbox"] == mode, results
    return results, seconds


def run_script(path, cwd, env, timeout):
    """Execute a script just written -> CompletedProcess. Another thread's fork can still hold it
    open for writing for an instant (ETXTBSY, "Text file busy"): then try again."""
    for attempt in range(20):
        try:
            return subprocess.run([str(path)], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
        except OSError as exc:
            if exc.errno != errno.ETXTBSY or attempt == 19:
                raise
            time.sleep(0.05)


def gradescope(zip_path, notebook, **kwargs):
    """One submission through the simulated Gradescope -> (results, seconds, root); the tree
    is removed afterwards."""
    mode, timeout = kwargs.pop("mode", None), kwargs.pop("timeout", 120)
    root = autograder_tree(zip_path, notebook, **kwargs)
    try:
        results, seconds = run_autograder(root, timeout, mode)
    finally:
        shutil.rmtree(root)
    return results, seconds


def graded(results):
    """The tests that carry points (one per exercise), without the written answers' tests."""
    return [t for t in results["tests"] if "score" in t]


def points(results):
    return {t["name"]: t["score"] for t in graded(results)}


def solved(config, **overrides):
    return release(config, {**reference_cells(), **overrides})


def raising(*names):
    """Answer cells that raise NotImplementedError unless the cell before defined `stolen`."""
    return {name: with_body(name, f"if 'stolen' in globals():\n    return stolen['{name}'](*locals().values())\n"
                                  "raise NotImplementedError") for name in names}


# ---------------------------------------------------------------- the zip

def function_body_lines(path):
    """Stripped lines of the bodies of every function in a Python file (docstrings included)."""
    text = Path(path).read_text()
    lines = text.splitlines()
    found = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for line in lines[node.body[0].lineno - 1:node.end_lineno]:
                if len(line.strip()) >= 20 and not line.strip().startswith("#"):
                    found.add(line.strip())
    return found


def secret_lines(config):
    """Body lines of the reference and of the assignment's files that neither the release (its
    support code may well contain `next_c = f * prev_c + i * g`) nor the generic engine, shipped
    as source, already holds."""
    secret = function_body_lines(inspect.getsourcefile(reference))
    for path in sorted((REPO / "assignments").rglob("*.py")):
        secret |= function_body_lines(path)
    public = [p for p in config.release_dir.rglob("*") if p.is_file()] + sorted((REPO / "autograder").rglob("*.py"))
    public = "\n".join(p.read_text(errors="replace") for p in public)
    return {line for line in secret if line not in public}


def test_the_zip_ships_reference_and_hidden_tests_as_bytecode_only(built, config):
    secret = secret_lines(config)
    assert len(secret) > 100
    with zipfile.ZipFile(built) as zf:
        names = zf.namelist()
        for name in names:
            text = zf.read(name).decode("latin-1")
            leaked = [line for line in secret if line in text]
            assert not leaked, (name, leaked[:3])
    private = [n for n in names if n.startswith(("solutions/", "assignments/"))]
    assert "solutions/lstm.pyc" in private and "assignments/lstm/exercises.pyc" in private
    assert all(n.endswith(".pyc") for n in private), private
    assert not [n for n in private if "samples" in n or "misconceptions" in n or "styles" in n]
    assert {"setup.sh", "run_autograder", "grading.yml", "catalogue.marshal", "autograder/grade.py",
            "release/lstm/seqlab/checks.py"} <= set(names)
    assert not [n for n in names if n.endswith(".ipynb")]    # the source notebook holds the solutions
    assert "source/lstm/seqlab/checks.py" in names       # read by the hidden feedback (explain)
    assert not [n for n in names if "otter" in n or n.startswith("tests/")]


def test_the_zip_installs_pinned_python_and_requirements(built):
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    with zipfile.ZipFile(built) as zf:
        setup = zf.read("setup.sh").decode()
        runner = zf.read("run_autograder").decode()
        lock = zf.read(LOCK_FILE).decode()
        modes = {i.filename: i.external_attr >> 16 for i in zf.infolist()}
    assert project["requires-python"] == ">=3.11,<3.12"
    assert "python3.11 -m venv" in setup and "bubblewrap" in setup and not re.search("@[A-Z]+@", setup + runner)
    assert f'--require-hashes --only-binary :all: \\\n  -r "/autograder/source/{LOCK_FILE}"' in setup
    assert lock == (REPO / LOCK_FILE).read_text()
    assert "python3.11" in runner and "autograder.integrations.gradescope" in runner
    assert modes["run_autograder"] & stat.S_IXUSR and modes["setup.sh"] & stat.S_IXUSR


def test_the_zip_is_the_same_bytes_when_built_twice(built, tmp_path):
    done = run_cli("gradescope", "--assignment", "lstm", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "lstm-gradescope.zip").read_bytes() == built.read_bytes()


# ---------------------------------------------------------------- parity with the local grader

@pytest.fixture(scope="module")
def sample_runs(built, config):
    """Every bundled sample through the simulated Gradescope, its sample id as the user id
    (two at a time: two of them hang until the call limit)."""
    def one(sample):
        content = sample.build(config)
        if isinstance(content, dict):
            content = json.dumps(content, indent=1).encode()    # the bytes `demo` writes
        return sample.student_id, gradescope(built, content, users=(sample.student_id,),
                                             file_name=sample.file_name or config.notebook)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        return dict(pool.map(one, SAMPLES))


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.student_id)
def test_gradescope_and_local_points_agree_exercise_by_exercise(sample_runs, demo, sample, config):
    _, local_results, _ = demo
    local = local_results[sample.student_id]
    results, seconds = sample_runs[sample.student_id]
    assert [t["name"] for t in graded(results)] == list(config.points)
    assert {t["name"]: t["max_score"] for t in graded(results)} == config.points
    assert results["score"] == pytest.approx(sum(points(results).values()), abs=1e-9)
    assert all(t["score"] is not None and t["output"] for t in graded(results))
    assert seconds < config.limits.wall_seconds
    if sample.file_name:     # Gradescope takes any name: the one notebook uploaded is graded
        assert points(results) == pytest.approx(BY_ID["correct"].expected)
        assert f"graded {sample.file_name}, the only notebook uploaded" in results["output"]
        return
    assert points(results) == pytest.approx({e["id"]: e["points"] for e in local["exercises"]}, abs=1e-9)
    if local["reason"]:       # said once, at the top; each exercise only says it was not graded
        assert local["reason"] in results["output"]
        assert {t["output"] for t in graded(results)} == {NOT_READ}
        return
    for test, exercise in zip(graded(results), local["exercises"]):
        assert exercise["message"].strip().lower() in test["output"].lower()
        if exercise["misconception"]:
            assert exercise["misconception"]["title"] in test["output"]
            assert exercise["misconception"]["hint"] in test["output"]


def test_what_students_see_has_no_boilerplate_or_hidden_source(sample_runs, config):
    secret = secret_lines(config)
    for student, (results, _) in sample_runs.items():
        shown = json.dumps(results)
        assert not [s for s in secret if json.dumps(s)[1:-1] in shown], student
        assert "verdict(" not in shown and "Public Tests" not in shown and "Autograder failed" not in shown
        for test in results["tests"]:     # nothing reported twice
            sentences = [s for s in test["output"].lower().replace("\n", ". ").split(". ") if s]
            assert len(sentences) == len(set(sentences)), (student, test)
            assert test["output"] not in results["output"]
    for student, (results, _) in sample_runs.items():   # Gradescope's specification, field by field
        assert problems(results) == [], (student, problems(results))
        assert results["output"] == results["output"].strip() and all(
            t["output"] == t["output"].strip() for t in results["tests"]), student
    for student in ("broken_json", "empty_folder"):    # nothing graded: no exercise verdict, no answers
        results = sample_runs[student][0]
        assert {t["output"] for t in results["tests"]} == {NOT_READ}
        assert len(results["tests"]) == len(graded(results)) and "Written answers" not in results["output"]
    bug = sample_runs["bug_forget_gate_tanh"][0]
    assert bug["score"] == sum(BY_ID["bug_forget_gate_tanh"].expected.values()) < 18
    assert "Forget gate squashed with tanh" in bug["tests"][1]["output"]
    bptt = sample_runs["bug_last_step_weights"][0]     # a BPTT bug: partial credit
    assert 0 < points(bptt)["lstm_backward"] == BY_ID["bug_last_step_weights"].expected["lstm_backward"] < 5
    assert "not valid JSON" in sample_runs["broken_json"][0]["output"]
    assert "no notebook was uploaded" in sample_runs["empty_folder"][0]["output"]


def test_two_students_meet_different_hidden_inputs(built, config, tmp_path):
    """A notebook right only for some hidden shapes: its points tell which inputs it met. Six
    user ids (and a group of two) do not all meet the same, and each gets the local grader's
    points for that id."""
    sigmoid = with_body("sigmoid", "e = np.exp(-np.abs(x))\nright = np.where(x >= 0, 1 / (1 + e), e / (1 + e))\n"
                                   "return right if x.ndim != 3 or x.shape[0] % 2 == 0 else right * 0")
    clip = with_body("clip_grad_norm", "total = float(np.sqrt(sum(np.sum(g * g) for g in grads.values())))\n"
                                       "scale = max_norm / (total + 1e-6) if total > max_norm else 1.0\n"
                                       "if 'Wx' in grads and grads['Wx'].shape[0] % 2:\n    scale = 0.5\n"
                                       "return {k: v * scale for k, v in grads.items()}, total")
    notebook = solved(config, sigmoid=sigmoid, clip_grad_norm=clip)
    path = tmp_path / config.notebook
    path.write_text(json.dumps(notebook, indent=1))
    grader = Grader.prepare(config)
    ids = [("1001",), ("1002",), ("1003",), ("1004",), ("1005",), ("2001", "1999")]
    seen = set()
    for users in ids:
        results, _ = gradescope(built, path.read_bytes(), users=users)
        local = grader.grade("+".join(sorted(users)), path)
        assert points(results) == pytest.approx({e["id"]: e["points"] for e in local["exercises"]})
        seen.add((points(results)["sigmoid"], points(results)["clip_grad_norm"]))
    assert len(seen) > 1


# ---------------------------------------------------------------- a student as an adversary

STEAL = '''
import glob, marshal, os, _posixsubprocess
ROOT = {root!r}
def cat(path):
    """Read a file past Python's audit hook: fork and exec /bin/cat (no audit event)."""
    r, w = os.pipe()
    er, ew = os.pipe()
    pid = _posixsubprocess.fork_exec([b"/bin/cat", path.encode()], [b"/bin/cat"], True, (w,), None, None,
                                     -1, -1, -1, w, -1, -1, er, ew, True, False, -1, None, None, None, -1, None, False)
    os.close(w); os.close(ew)
    data = b""
    while chunk := os.read(r, 1 << 16):
        data += chunk
    os.waitpid(pid, 0)
    return data
data = None
for attempt in (lambda: open(ROOT + "/source/solutions/lstm.pyc", "rb").read(),
                lambda: cat(ROOT + "/source/solutions/lstm.pyc"),
                lambda: __import__("numpy").fromfile(ROOT + "/source/solutions/lstm.pyc", "uint8").tobytes()):
    try:
        data = attempt()
        if data:
            break
    except Exception as exc:
        print("blocked:", type(exc).__name__, exc)
'''
USE_STOLEN = '''
if data:
    namespace = {}
    exec(marshal.loads(data[16:]), namespace)
    stolen = namespace
'''


def test_a_notebook_cannot_read_the_answers(built, config, mode):
    """The theft works as uid 65534 on the tree as unzipped (the control); graded, the same
    notebook gets nothing; and after run_autograder, uid 65534 (the "uid" worker's identity)
    can read nothing under source/, Python's audit hook aside."""
    def steal_as_nobody(root):
        probe = STEAL.format(root=str(root)) + "print('STOLEN' if data else 'SAFE')"
        done = subprocess.run(["/usr/bin/python3", "-I", "-c", probe], capture_output=True, text=True,
                              cwd="/tmp", user=65534, group=65534, env={"PATH": "/usr/bin:/bin"})
        return done.stdout + done.stderr

    as_root = os.geteuid() == 0      # as on Gradescope; elsewhere (CI) only the grading part runs
    root = autograder_tree(built, None)
    try:
        assert not as_root or "STOLEN" in steal_as_nobody(root)
        thief = release(config, raising(*FUNCTIONS), [STEAL.format(root=str(root)) + USE_STOLEN])
        (root / "submission" / config.notebook).write_text(json.dumps(thief))
        results, _ = run_autograder(root, mode=mode)
        assert results["score"] == 0, points(results)
        assert not as_root or "SAFE" in steal_as_nobody(root)
        assert stat.S_IMODE((root / "source").stat().st_mode) == 0o700
        for secret in ("grading.yml", "catalogue.marshal", "solutions/lstm.pyc", "assignments/lstm/exercises.pyc"):
            assert not stat.S_IMODE((root / "source" / secret).stat().st_mode) & 0o077, secret
    finally:
        shutil.rmtree(root)


TAMPER = '''
import json, os, sys
ROOT = {root!r}
forged = {{"score": 18.0, "tests": [{{"name": "sigmoid", "score": 18.0, "max_score": 1.0}}]}}
for attempt in (
    lambda: open(ROOT + "/results/results.json", "w").write(json.dumps(forged)),
    lambda: open(ROOT + "/source/autograder/judging/compare.py", "a").write("\\ndef values(*a, **k):\\n    return True, ''\\n"),
    lambda: open(ROOT + "/source/autograder/outputs/report.py", "a").write("\\nSTATUS_WORDS = {{}}\\n"),
):
    try:
        attempt()
    except Exception as exc:
        print("blocked:", type(exc).__name__)
for name in ("autograder", "autograder.integrations.gradescope", "autograder.judging.compare"):
    try:
        module = __import__(name, fromlist=["x"])
        module._RESULT = forged
        module.values = lambda *a, **k: (True, "")
    except Exception as exc:
        print("blocked:", type(exc).__name__)
import numpy as np
np.allclose = lambda *a, **k: True
sys.modules["numpy"].array_equal = lambda *a, **k: True
'''


def test_a_notebook_cannot_forge_the_result_or_patch_the_engine(built, config, mode):
    root = autograder_tree(built, None)
    try:
        engine = {p: p.read_bytes() for p in (root / "source" / "autograder").rglob("*.py")}
        tamper = release(config, raising(*FUNCTIONS), [TAMPER.format(root=str(root))])
        (root / "submission" / config.notebook).write_text(json.dumps(tamper))
        results, _ = run_autograder(root, mode=mode)
        assert results["score"] == 0 and set(points(results).values()) == {0}
        assert all(t["output"].startswith("Not implemented yet") for t in graded(results))
        assert {p: p.read_bytes() for p in engine} == engine
    finally:
        shutil.rmtree(root)


def test_a_hang_at_top_level_still_gets_results_within_the_limits(built, config, mode):
    """time.sleep(10**6) in a cell: stopped at the call limit, the rest graded; a hang that
    swallows the time-out: killed at the submission's wall limit, results.json written anyway."""
    limits = {"wall_seconds": 6, "call_seconds": 1}
    sleeper = release(config, reference_cells(), ["import time\ntime.sleep(10**6)"])
    results, seconds = gradescope(built, json.dumps(sleeper).encode(), limits=limits, mode=mode)
    assert results["score"] == 18 and seconds < 6
    assert "StudentTimeout: took longer than 1 s" in results["output"]
    stubborn = release(config, reference_cells(), ["while True:\n    try:\n        while True:\n            pass\n"
                                                   "    except BaseException:\n        pass"])
    results, seconds = gradescope(built, json.dumps(stubborn).encode(), limits=limits, timeout=60, mode=mode)
    assert results["score"] == 0 and seconds < 6 + GRACE_SECONDS + 4
    assert all(t["output"].startswith("Too slow") for t in graded(results)), results["tests"]


# ---------------------------------------------------------------- what Gradescope shows

def test_visibility_comes_from_grading_yml(built, config):
    settings = {"visibility": "visible", "tests_visibility": "after_due_date", "stdout_visibility": "visible"}
    results, _ = gradescope(built, json.dumps(release(config)).encode(), settings=settings)
    assert results["visibility"] == "visible" and results["stdout_visibility"] == "visible"
    assert {t["visibility"] for t in results["tests"]} == {"after_due_date"}
    results, _ = gradescope(built, json.dumps(release(config)).encode(), settings={"visibility": "sometimes"})
    assert results["score"] == 0 and results["output"] == FAILED
    assert "must be one of" in results["extra_data"]["autograder_error"]


def test_written_answers_are_shown_for_hand_grading(built, config):
    notebook = solved(config)
    for cell in notebook["cells"]:
        if cell["metadata"].get("nbgrader", {}).get("grade_id") == "q_clipping":
            cell["source"] = "Clipping rescales all gradients together, so their direction is kept."
    results, _ = gradescope(built, json.dumps(notebook).encode())
    output = results["output"]
    assert "Written answers (graded by hand: q_cell_state 2 points, q_clipping 2 points, q_compare 2 points)" in output
    answers = {t["name"]: t for t in results["tests"] if "score" not in t}
    clipping = answers["Written answer q_clipping (graded by hand, 2 points)"]
    assert clipping["output"].startswith("Clipping rescales all gradients together")
    assert clipping["output_format"] == "text" and "max_score" not in clipping
    assert answers["Written answer q_cell_state (graded by hand, 2 points)"]["output"] == "(no answer)"
    assert results["score"] == 18


def test_a_grader_failure_is_a_zero_with_its_reason(built, config):
    root = autograder_tree(built, json.dumps(solved(config)).encode())
    try:
        (root / "source" / "catalogue.marshal").write_bytes(b"not marshal")
        results, _ = run_autograder(root)
    finally:
        shutil.rmtree(root)
    assert results["score"] == 0 and results["tests"] == [] and results["output"] == FAILED
    assert results["extra_data"]["autograder_error"].startswith("ValueError: ") and problems(results) == []


def test_several_notebooks_none_named_right_get_a_zero_with_the_reason(built, config):
    root = autograder_tree(built, json.dumps(solved(config)).encode(), file_name="mine.ipynb")
    try:
        shutil.copy(root / "submission" / "mine.ipynb", root / "submission" / "old.ipynb")
        results, _ = run_autograder(root)
    finally:
        shutil.rmtree(root)
    assert results["score"] == 0 and "2 notebooks were uploaded and none is named lstm.ipynb" in results["output"]


def test_honest_work_is_graded_alike_in_either_sandbox(built, config, mode):
    """Gradescope's containers cannot create bubblewrap's namespaces: there the worker runs as
    uid 65534; the grades are the same."""
    for student in ("correct", "bug_last_step_weights"):
        content = json.dumps(BY_ID[student].build(config), indent=1).encode()
        results, _ = gradescope(built, content, users=(student,), mode=mode)
        assert points(results) == pytest.approx(BY_ID[student].expected)


def test_a_stateful_notebook_poisoning_second_opinions_is_graded_as_locally(built, config, tmp_path):
    """lstm_gates answers right at first, then (when the judges ask it for second opinions on
    lstm_step_forward) in agreement with a wrong lstm_step_forward: Gradescope grades it exactly
    as the local grader does, and the wrong step forward earns nothing there either."""
    gates = with_body("lstm_gates", "H = prev_h.shape[1]\nCALLS.append(1)\na = x @ Wx + prev_h @ Wh + b\n"
                                    "i, f, g, o = sigmoid(a[:, :H]), sigmoid(a[:, H:2*H]), np.tanh(a[:, 2*H:3*H]), "
                                    "sigmoid(a[:, 3*H:])\nreturn (i, f, g, o) if len(CALLS) <= 3 else (i, 0.9 * f, g, o)")
    step = with_body("lstm_step_forward", "H = prev_h.shape[1]\na = x @ Wx + prev_h @ Wh + b\n"
                                          "i, f, g, o = sigmoid(a[:, :H]), 0.9 * sigmoid(a[:, H:2*H]), "
                                          "np.tanh(a[:, 2*H:3*H]), sigmoid(a[:, 3*H:])\n"
                                          "next_c = f * prev_c + i * g\nnext_h = o * np.tanh(next_c)\n"
                                          "return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, b)")
    notebook = solved(config, lstm_gates="CALLS = []\n" + gates, lstm_step_forward=step)
    path = tmp_path / config.notebook
    path.write_text(json.dumps(notebook, indent=1))
    results, _ = gradescope(built, path.read_bytes(), users=("777",))
    local = Grader.prepare(config).grade("777", path)
    assert points(results) == pytest.approx({e["id"]: e["points"] for e in local["exercises"]})
    assert [t["output"] for t in graded(results)] == [
        t["output"] for t in to_gradescope(local, DEFAULT_VISIBILITY, [], {}, {})["tests"]]
    assert points(results)["lstm_step_forward"] == 0


def test_a_ta_can_try_the_zip_on_a_notebook_before_uploading_it(config, tmp_path):
    skip_without_a_sandbox()
    notebook = tmp_path / "My LSTM.ipynb"
    notebook.write_text(json.dumps(BY_ID["bug_last_step_weights"].build(config)))
    done = run_cli("gradescope", "--assignment", "lstm", "--out", str(tmp_path), "--try", str(notebook))
    assert done.returncode == 0, done.stderr
    expected = BY_ID["bug_last_step_weights"].expected
    assert f"lstm_backward: {expected['lstm_backward']:g} / 5\n    Partly correct. " in done.stdout
    assert "Weight gradients not summed over time" in done.stdout
    assert f"total: {sum(expected.values()):g}\ngraded My LSTM.ipynb, the only notebook uploaded" in done.stdout
    assert (tmp_path / "lstm-gradescope.zip").is_file()


# ---------------------------------------------------------------- always a results.json

def shell_only_path(tmp_path):
    """A PATH holding only what run_autograder's shell fallback may use: no Python at all."""
    folder = tmp_path / "shell-bin"
    folder.mkdir()
    for tool in ("bash", "chmod", "mkdir", "rm", "sed", "tail", "tr"):
        (folder / tool).symlink_to(shutil.which(tool))
    return str(folder)


def fake_python(tmp_path, probe_answer, status=0):
    """A `python` that answers run_autograder's probe with `probe_answer` (version, then missing
    packages) and, asked to grade, exits with `status` writing nothing."""
    path = tmp_path / "python"
    path.write_text(f'#!/bin/sh\ncase "$*" in *find_spec*) echo "{probe_answer}"; exit 0 ;; esac\nexit {status}\n')
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize("case", ["no python", "python 3.10", "no numpy", "grader crashed"])
def test_a_broken_image_still_leaves_a_results_json_saying_what_to_fix(built, tmp_path, case):
    """run_autograder with setup.sh's venv missing, a Python of the wrong version, one without the
    packages, or a grader that dies before writing: the shell writes results.json itself (valid
    per Gradescope's specification), the student reads FAILED, the staff read what to do."""
    python, staff = {"no python": (lambda: "/nonexistent/python", "no Python 3.11 here"),
                     "python 3.10": (lambda: fake_python(tmp_path, "3.10"), "is Python 3.10; the zip's bytecode"),
                     "no numpy": (lambda: fake_python(tmp_path, "3.11 numpy yaml"), "lacks the package(s) numpy yaml"),
                     "grader crashed": (lambda: fake_python(tmp_path, "3.11", status=1),
                                        "the grader stopped (exit status 1) without writing results.json")}[case]
    python = python()
    root = autograder_tree(built, b"{}")
    try:
        env = {"PATH": shell_only_path(tmp_path), "AUTOGRADER_ROOT": str(root), "AUTOGRADER_PYTHON": python}
        done = run_script(root / "run_autograder", root, env, 60)
        results = json.loads((root / "results" / "results.json").read_text())
    finally:
        shutil.rmtree(root)
    assert done.returncode == 0 and problems(results) == []
    assert results["score"] == 0 and results["output"] == FAILED and results["tests"] == []
    assert staff in results["extra_data"]["autograder_error"] and staff in done.stdout
    assert "upload the zip again" in results["extra_data"]["autograder_error"] or case == "grader crashed"


def test_missing_submission_metadata_is_a_staff_matter_not_a_traceback(built, config):
    root = autograder_tree(built, json.dumps(solved(config)).encode())
    try:
        (root / "submission_metadata.json").unlink()
        results, _ = run_autograder(root)
    finally:
        shutil.rmtree(root)
    assert results["output"] == FAILED and problems(results) == []
    assert "submission_metadata.json is missing" in results["extra_data"]["autograder_error"]
    assert "Traceback" not in json.dumps(results) and "FileNotFoundError" not in results["output"]


def test_a_second_notebook_beside_the_right_one_is_named(built, config):
    root = autograder_tree(built, json.dumps(solved(config)).encode())
    try:
        (root / "submission" / "scratch work.ipynb").write_text("{}")
        results, _ = run_autograder(root)
    finally:
        shutil.rmtree(root)
    assert results["score"] == 18
    assert results["output"].startswith("graded lstm.ipynb; also uploaded and not graded: scratch work.ipynb")
