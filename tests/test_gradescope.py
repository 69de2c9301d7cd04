"""The Gradescope autograder zip: built with otter, free of reference and assignment source,
Python pinned, and `otter run` on it gives the local grader's points (README, "For staff")."""
import ast
import inspect
import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

from assignments.lstm.samples import SAMPLES
from autograder.samples import write_submission
from solutions import lstm as reference
from tests.conftest import REPO, run_cli

BY_ID = {s.student_id: s for s in SAMPLES}
RUN = ("correct", "blank_release", "bug_forget_gate_tanh")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("gradescope")
    done = run_cli("gradescope", "--assignment", "lstm", "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out / "lstm-gradescope.zip"


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
    """Body lines of the reference and of the assignment's files that the release does not
    already show students (its support code may well contain `next_c = f * prev_c + i * g`)."""
    secret = function_body_lines(inspect.getsourcefile(reference))
    for path in sorted((REPO / "assignments").rglob("*.py")):
        secret |= function_body_lines(path)
    public = "\n".join(p.read_text(errors="replace") for p in config.release_dir.rglob("*") if p.is_file())
    return {line for line in secret if line not in public}


def test_the_zip_holds_no_reference_or_assignment_source(built, config):
    secret = secret_lines(config)
    assignment_files = sorted((REPO / "assignments").rglob("*.py"))
    assert len(secret) > 100
    with zipfile.ZipFile(built) as zf:
        names = zf.namelist()
        assert not [n for n in names if "assignments" in n or "solutions" in n or "samples" in n]
        assert not {Path(n).name for n in names if n.endswith(".py")} & {
            p.name for p in assignment_files if p.name not in ("__init__.py",)}
        for name in names:
            text = zf.read(name).decode("latin-1")
            leaked = [line for line in secret if line in text]
            assert not leaked, (name, leaked[:3])


def test_the_zip_pins_python_and_the_projects_versions(built):
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    with zipfile.ZipFile(built) as zf:
        environment = yaml.safe_load(zf.read("environment.yml"))
        config = json.loads(zf.read("otter_config.json"))
        tests = sorted(n for n in zf.namelist() if n.startswith("tests/"))
    assert "python=3.11" in environment["dependencies"] and ">=3.11,<3.12" == project["requires-python"]
    pip = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    for pin in pip:
        assert pin.startswith("otter-grader") or pin in project["dependencies"], pin
    assert "numpy==" + __import__("numpy").__version__ in pip
    assert not config["show_stdout"]
    assert tests == sorted(f"tests/{e}.py" for e in json.loads(
        zipfile.ZipFile(built).read("files/_grader/data/spec.json"))["points"])


def otter_run(zip_path, notebook, out):
    """Start `otter run` on one notebook (wrapped in timeout: otter run has no time limit of its
    own); returns a function that waits for it and reads its results.json."""
    out.mkdir()
    otter = os.path.join(os.path.dirname(sys.executable), "otter")
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    process = subprocess.Popen(["timeout", "300", otter, "run", "--no-logo", "-a", str(zip_path), "-o", str(out),
                                str(notebook)], cwd=out, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)

    def wait():
        output, _ = process.communicate()
        assert process.returncode == 0, output[-5000:]
        return json.loads((out / "results.json").read_text())
    return wait


@pytest.fixture(scope="module")
def runs(built, tmp_path_factory, config):
    """The local grader and otter run (all three at once) on the same three submissions."""
    tmp = tmp_path_factory.mktemp("gradescope_runs")
    root = tmp / "submitted"
    for student in RUN:
        write_submission(root, student, config.name, config.notebook, BY_ID[student].build(config))
    waits = {student: otter_run(built, root / student / "lstm" / config.notebook, tmp / f"otter_{student}")
             for student in RUN}
    local = run_cli("grade", str(root), "--assignment", "lstm", "--out", str(tmp / "local"), "--no-gradebook")
    assert local.returncode == 0, local.stderr
    return {student: (json.loads((tmp / "local" / "results" / f"{student}.json").read_text()), wait())
            for student, wait in waits.items()}


@pytest.mark.parametrize("student", RUN)
def test_otter_run_gives_the_local_graders_points(runs, student, config):
    local, otter = runs[student]
    scores = {t["name"]: t["score"] for t in otter["tests"] if "score" in t}
    expected = {e["id"]: e["points"] for e in local["exercises"]}
    assert set(scores) == set(config.points)
    assert scores == pytest.approx(expected, abs=1e-4)
    assert expected == pytest.approx(BY_ID[student].expected, abs=1e-4)
    assert {t["name"]: t["max_score"] for t in otter["tests"] if "score" in t} == pytest.approx(config.points)


def test_what_students_see_holds_no_hidden_test_source(runs, config):
    secret = secret_lines(config)
    for student in RUN:
        _, otter = runs[student]
        shown = json.dumps(otter)
        assert not [s for s in secret if json.dumps(s)[1:-1] in shown], student
        for test in otter["tests"]:
            assert test.get("visibility", "visible") != "hidden" or test["name"] == "Public Tests"
    _, buggy = runs["bug_forget_gate_tanh"]
    text = "\n".join(t["output"] for t in buggy["tests"])
    assert "Forget gate squashed with tanh" in text     # the diagnosis reaches the student
    assert "verdict(" in text                           # the one line of test code otter shows


def test_otter_and_the_zip_need_no_repository(built, tmp_path):
    """The zip is self-contained: unpacked away from the repository it still imports."""
    with zipfile.ZipFile(built) as zf:
        zf.extractall(tmp_path)
    grader = tmp_path / "files" / "_grader"
    code = ("import sys; sys.path.insert(0, '.'); import autograder.gradescope as g; "
            "import autograder.exercise; print('ok')")
    done = subprocess.run([sys.executable, "-I", "-c", code], cwd=grader, capture_output=True, text=True)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr
    shutil.rmtree(tmp_path / "files")
