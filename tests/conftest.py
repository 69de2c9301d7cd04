"""Shared fixtures. Tests run from the repository root (pyproject's pytest pythonpath)."""
import autograder  # noqa: F401  (first: numpy's BLAS on one thread in this process, as the grader's)
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def cpu_accounting():
    """Does this machine give the student's sessions a cgroup that counts their CPU time? Without
    one, derivation cases are limited by the wall clock only (README, "Not done")."""
    from autograder.process import sandbox
    return sandbox.cpu_accounting()


@pytest.fixture(scope="session")
def config():
    from autograder import config as configuration
    return configuration.load("lstm")


def run_cli(*args, cwd=REPO, timeout=600):
    """python -m autograder ARGS, as a TA runs it; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "autograder", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """`python -m autograder demo` once: the bundled samples written and graded for real."""
    out = tmp_path_factory.mktemp("demo")
    done = run_cli("demo", "--assignment", "lstm", "--out", str(out), "--no-gradebook")
    assert done.returncode == 0, done.stderr
    results = {p.stem: json.loads(p.read_text()) for p in (out / "results").glob("*.json")}
    return out, results, done


@pytest.fixture(scope="session")
def catalogue_graded(config, tmp_path_factory):
    """(grader, {student id: result}): tests/catalogue_notebooks.py's submissions, graded once in
    parallel by one Grader (sandboxed student processes)."""
    from autograder.grade import Grader, find_submissions, grade_all
    from autograder.samples import write_submission
    from tests.catalogue_notebooks import notebooks
    assert (config.release_dir / config.notebook).is_file(), "the release notebook is missing"
    root = tmp_path_factory.mktemp("mutants")
    grader = Grader.prepare(config)
    for student, notebook in notebooks(config).items():
        write_submission(root, student, config.name, config.notebook, notebook)
    results = grade_all(grader, find_submissions(root, config.name, config.notebook))
    return grader, {r["student_id"]: r for r in results}
