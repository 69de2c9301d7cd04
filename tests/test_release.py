"""The student release (release/lstm/): no solution leaks, only the files students need, fresh
(what `make release` would produce now, byte for byte), and runnable: every check cell fails
with a clear "not implemented yet" and no other cell errors."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import solutions.lstm as ref
from tools.release import EXERCISES, JUNK, make_fixtures, reference_body, write_npz

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "source" / "lstm"
RELEASE = REPO / "release" / "lstm"
MARKERS = ["BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"]


def files(root):
    """Relative paths of the files under root, skipping caches a test run may leave."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in JUNK]
        for name in filenames:
            if name in JUNK or name.endswith((".pyc", ".pyo")):
                continue
            out.add(os.path.relpath(os.path.join(dirpath, name), root))
    return out


def all_release_files(root):
    return {os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs}


def cell_text(cell):
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


@pytest.fixture(scope="module")
def release_nb():
    return json.loads((RELEASE / "lstm.ipynb").read_text(encoding="utf-8"))


def test_release_has_only_the_files_students_need():
    found = all_release_files(RELEASE)
    assert "lstm.ipynb" in found
    junk = [p for p in found if set(Path(p).parts) & JUNK or p.endswith((".pyc", ".pyo"))]
    assert not junk, junk
    # Everything else mirrors source/lstm: the support package (with its fixtures) and data.
    assert found == files(SOURCE), sorted(found ^ files(SOURCE))
    for rel in found - {"lstm.ipynb"}:
        assert (RELEASE / rel).read_bytes() == (SOURCE / rel).read_bytes(), rel
    assert "seqlab/checks.py" in found and "seqlab/fixtures.npz" in found


def test_release_has_no_solution_markers():
    for rel in all_release_files(RELEASE):
        path = RELEASE / rel
        if path.suffix in (".npz", ".png", ".gz"):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for marker in MARKERS:
            assert marker not in text, (rel, marker)


def _code_lines(text):
    """Non-empty lines without comments, stripped."""
    return [l for l in (s.split("#")[0].strip() for s in text.splitlines()) if l]


def _release_texts():
    for rel in sorted(all_release_files(RELEASE)):
        path = RELEASE / rel
        if path.suffix in (".npz", ".png", ".gz", ".jpg", ".svg"):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix == ".ipynb":
            text = "\n".join(cell_text(c) for c in json.loads(text)["cells"])
        yield rel, text


def test_release_notebook_contains_no_line_of_the_reference():
    body_lines = set()
    for name in EXERCISES:
        for line in _code_lines(reference_body(getattr(ref, name))):
            if len(line) >= 16:               # skip trivia such as "], axis=1)" or "return h, cache"
                body_lines.add(line)
    assert len(body_lines) > 40
    for rel, text in _release_texts():
        if rel.endswith(".ipynb"):
            leaked = set(_code_lines(text)) & body_lines
            assert not leaked, (rel, sorted(leaked)[:5])


def test_release_support_files_contain_no_block_of_the_reference():
    """The support modules (a vanilla RNN among them) may share single idioms with the LSTM
    reference (`for t in reversed(range(T)):`), never three consecutive lines of it."""
    windows = set()
    for name in EXERCISES:
        body = _code_lines(reference_body(getattr(ref, name)))
        windows |= {tuple(body[k:k + 3]) for k in range(len(body) - 2)}
    for rel, text in _release_texts():
        lines = _code_lines(text)
        leaked = {tuple(lines[k:k + 3]) for k in range(len(lines) - 2)} & windows
        assert not leaked, (rel, sorted(leaked)[:3])


def test_release_answer_cells_are_stubs(release_nb):
    answers = [c for c in release_nb["cells"] if c["cell_type"] == "code"
               and c["metadata"].get("nbgrader", {}).get("solution")]
    assert [c["metadata"]["nbgrader"]["grade_id"] for c in answers] == EXERCISES
    for cell in answers:
        src = cell_text(cell)
        name = cell["metadata"]["nbgrader"]["grade_id"]
        first = next(l for l in src.splitlines() if l.strip() and not l.strip().startswith("#"))
        assert first.startswith(f"def {name}("), name
        assert "raise NotImplementedError()" in src
    checks = [c for c in release_nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade")
              and c["cell_type"] == "code"]
    assert [c["metadata"]["nbgrader"]["grade_id"] for c in checks] == [f"check_{n}" for n in EXERCISES]


def test_release_is_fresh(tmp_path):
    """`python -m tools.release lstm` in a copy of the repository changes nothing."""
    ignore = shutil.ignore_patterns(*JUNK, "*.pyc")
    for name in ("source", "solutions", "tools"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=ignore)
    shutil.copy(REPO / "nbgrader_config.py", tmp_path)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([sys.executable, "-m", "tools.release", "lstm"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    stale = []
    for rel in files(SOURCE) | files(tmp_path / "source" / "lstm"):
        a, b = SOURCE / rel, tmp_path / "source" / "lstm" / rel
        if not (a.exists() and b.exists() and a.read_bytes() == b.read_bytes()):
            stale.append(f"source/lstm/{rel}")
    new = tmp_path / "release" / "lstm"
    for rel in all_release_files(RELEASE) | all_release_files(new):
        a, b = RELEASE / rel, new / rel
        if not (a.exists() and b.exists() and a.read_bytes() == b.read_bytes()):
            stale.append(f"release/lstm/{rel}")
    assert not stale, f"run `make release` and commit: {stale}"
    assert not (tmp_path / "gradebook.db").exists()


def test_fixtures_are_rewritten_unless_equal_to_rounding(tmp_path):
    """Other CPUs' BLAS may change the last bits of the public answers (kept: the release stays
    fresh everywhere); any larger change, a new array or a new dtype rewrites the file."""
    import numpy as np
    path, arrays = tmp_path / "fixtures.npz", make_fixtures(ref)
    write_npz(path, arrays)
    original = path.read_bytes()
    write_npz(path, {**arrays, "lstm_forward.h": arrays["lstm_forward.h"] * (1 + 1e-15)})
    assert path.read_bytes() == original
    for changed in ({**arrays, "lstm_forward.h": arrays["lstm_forward.h"] * (1 + 1e-9)},
                    {**arrays, "extra": np.zeros(2)},
                    {**arrays, "lstm_forward.h": arrays["lstm_forward.h"].astype(np.float32)}):
        write_npz(path, changed)
        assert path.read_bytes() != original
        with np.load(path) as stored:
            assert sorted(stored.files) == sorted(changed)
            assert all(np.array_equal(stored[k], changed[k]) and stored[k].dtype == np.asarray(changed[k]).dtype
                       for k in stored.files)
        write_npz(path, arrays)
        assert path.read_bytes() == original


@pytest.fixture(scope="module")
def executed_release(tmp_path_factory):
    """The untouched release notebook run top to bottom in a copy of release/lstm."""
    import nbformat
    from nbclient import NotebookClient
    where = tmp_path_factory.mktemp("release") / "lstm"
    shutil.copytree(RELEASE, where)
    nb = nbformat.read(where / "lstm.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(where)}}).execute()
    return nb


def test_release_check_cells_say_not_implemented(executed_release):
    seen = []
    for cell in executed_release.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade"):
            name = meta["grade_id"][len("check_"):]
            errors = [o for o in cell.outputs if o.output_type == "error"]
            assert len(errors) == 1, (name, cell.outputs)
            assert errors[0]["ename"] == "NotImplementedYet", (name, errors[0]["ename"])
            assert "not implemented yet" in errors[0]["evalue"] and name in errors[0]["evalue"]
            seen.append(name)
    assert seen == EXERCISES


def test_release_other_cells_do_not_error(executed_release):
    errors = []
    for k, cell in enumerate(executed_release.cells):
        if cell.cell_type != "code" or cell.metadata.get("nbgrader", {}).get("grade"):
            continue
        for o in cell.outputs:
            if o.output_type == "error":
                errors.append((k, cell.metadata.get("tags", []), o["ename"], o["evalue"][:200]))
    assert not errors, ("cells other than the checks must run on the untouched release "
                        "(demos say they need the exercises)", errors)


def test_release_writes_nothing_to_stderr(executed_release):
    stderr = [(k, o.get("text", "")[:200]) for k, c in enumerate(executed_release.cells)
              if c.cell_type == "code" for o in c.outputs
              if o.output_type == "stream" and o.name == "stderr"]
    assert not stderr


def test_nbgrader_autograde_full_marks_for_solution_zero_for_release(tmp_path, release_nb):
    """nbgrader's own autograde on the check cells: the solved notebook earns every point
    (no check writes to stderr), the untouched release earns none."""
    from nbgrader.api import Gradebook
    import yaml
    points = yaml.safe_load((REPO / "grading.yml").read_text())["assignments"]["lstm"]["exercises"]
    ignore = shutil.ignore_patterns(*JUNK, "*.pyc")
    shutil.copytree(REPO / "source", tmp_path / "source", ignore=ignore)
    shutil.copy(REPO / "nbgrader_config.py", tmp_path)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONDONTWRITEBYTECODE": "1"}
    nbgrader = [sys.executable, "-m", "nbgrader"]
    done = subprocess.run(nbgrader + ["generate_assignment", "lstm", "--force"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]

    def no_demos(nb):
        nb = json.loads(json.dumps(nb))
        nb["cells"] = [c for c in nb["cells"] if "demo" not in c["metadata"].get("tags", [])]
        return nb

    source_nb = json.loads((SOURCE / "lstm.ipynb").read_text(encoding="utf-8"))
    for student, nb in (("solved", source_nb), ("blank", release_nb)):
        folder = tmp_path / "submitted" / student / "lstm"
        shutil.copytree(RELEASE, folder, ignore=shutil.ignore_patterns("lstm.ipynb", *JUNK))
        (folder / "lstm.ipynb").write_text(json.dumps(no_demos(nb)), encoding="utf-8")
    done = subprocess.run(nbgrader + ["autograde", "lstm", "--force"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    with Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}") as gb:
        for student, full in (("solved", True), ("blank", False)):
            for name, pts in points.items():
                grade = gb.find_grade(f"check_{name}", "lstm", "lstm", student)
                assert grade.auto_score == (pts if full else 0), (student, name, grade.auto_score)
