"""What keeps a TA from grading the wrong thing: folders that do not look like nbgrader's layout,
grading.yml points that disagree with the release, solution blocks rewritten by `make release`,
dot folders, CSV injection, grading outputs kept out of git."""
import csv
import dataclasses
import json
import shutil
import subprocess

import pytest

from autograder import consistency
from autograder.outputs import tables
from solutions import lstm as reference
from tests.conftest import REPO, run_cli
from tools import release

EVIL = '=HYPERLINK("evil.example","click")'   # a folder name: no slashes


def grade(root, out, *extra):
    return run_cli("grade", str(root), "--assignment", "lstm", "--out", str(out), "--no-gradebook", "--jobs", "1",
                   *extra)


def test_flat_download_is_explained_and_refused(tmp_path):
    (tmp_path / "smithjohn_100001_500001_lstm.ipynb").write_text("{}")
    (tmp_path / "alice").mkdir()
    done = grade(tmp_path, tmp_path / "out")
    assert done.returncode != 0
    assert "holds notebooks directly" in done.stderr and "autograder collect" in done.stderr


def test_missing_assignment_level_is_explained_and_refused(tmp_path):
    for student in ("alice", "bob", "carol"):
        (tmp_path / "root" / student).mkdir(parents=True)
        (tmp_path / "root" / student / "lstm.ipynb").write_text("{}")
    done = grade(tmp_path / "root", tmp_path / "out")
    assert done.returncode != 0
    assert "3 of 3 student folders" in done.stderr and "alice/lstm.ipynb is not in alice/lstm/" in done.stderr
    assert not (tmp_path / "out").exists()


def test_dot_folders_and_formula_ids_get_rows_with_neutralised_cells(tmp_path, config):
    """Issue 10 item 8: a folder starting with "." is a student like any other, and a student id
    that is a spreadsheet formula reaches grades.csv as text."""
    for student in (".hidden", EVIL, "-1+2", "plain"):
        (tmp_path / "root" / student).mkdir(parents=True)
    done = grade(tmp_path / "root", tmp_path / "out", "--allow-missing")
    assert done.returncode == 0, done.stderr
    assert "missing 4" in done.stdout
    ids = [r[0] for r in csv.reader((tmp_path / "out" / "grades.csv").open())][1:]
    assert sorted(ids) == sorted([".hidden", "'" + EVIL, "'-1+2", "plain"])
    assert (tmp_path / "out" / "feedback" / ".hidden.html").is_file()


def test_most_missing_is_refused_unless_allowed(tmp_path):
    for student in ("a", "b", "c"):
        (tmp_path / "root" / student).mkdir(parents=True)
    done = grade(tmp_path / "root", tmp_path / "out")
    assert done.returncode != 0 and "--allow-missing" in done.stderr


def test_safe_cells_keep_numbers_and_quote_formulas(tmp_path):
    assert [tables.safe(v) for v in ("=1+1", "+1+cmd", "-x", "@SUM(A1)", "\tx", "-4.8", -4.8, "100001", "Doe, Jane")] \
        == ["'=1+1", "'+1+cmd", "'-x", "'@SUM(A1)", "'\tx", "-4.8", "-4.8", "100001", "Doe, Jane"]
    tables.write_csv(tmp_path / "t.csv", ["id", "total"], [[EVIL, -1.5]])
    assert list(csv.reader((tmp_path / "t.csv").open()))[1] == ["'" + EVIL, "-1.5"]


def test_points_that_disagree_with_the_release_are_named(config):
    assert consistency.mismatches(config) == []
    changed = dataclasses.replace(config, points={**config.points, "lstm_backward": 6.0},
                                  manual={**config.manual, "q_extra": 1.0})
    problems = consistency.mismatches(changed)
    assert "check_lstm_backward: 6 point(s) in grading.yml, 5 in the release notebook" in problems
    assert any(p.startswith("q_extra: 1 point(s) in grading.yml, no such grade cell") for p in problems)


def test_grade_refuses_when_grading_yml_disagrees_with_the_release(tmp_path, monkeypatch, config):
    from autograder import cli
    from autograder.process.sandbox import GraderError
    (tmp_path / "root" / "a").mkdir(parents=True)
    changed = dataclasses.replace(config, points={**config.points, "sigmoid": 2.0})
    with pytest.raises(GraderError, match="check_sigmoid: 2 point"):
        cli.grade_command(changed, tmp_path / "root", tmp_path / "out", 1, "auto", quiet=True)


def test_release_says_when_it_rewrites_a_solution_block(tmp_path, capsys):
    notebook = tmp_path / "lstm.ipynb"
    shutil.copy(REPO / "source" / "lstm" / "lstm.ipynb", notebook)
    assert release.sync_notebook(str(notebook), reference) == []
    nb = json.loads(notebook.read_text())
    cell = next(c for c in nb["cells"] if "".join(c["source"]).startswith("def sigmoid("))
    source = "".join(cell["source"]).replace(release.END, "    x = x  # my edit\n    " + release.END)
    cell["source"] = source
    notebook.write_text(json.dumps(nb))
    assert release.sync_notebook(str(notebook), reference) == ["sigmoid"]
    assert "solution block of sigmoid" in capsys.readouterr().err
    assert "my edit" not in notebook.read_text()


@pytest.mark.parametrize("path", ["grades/grades.csv", "dist/lstm-gradescope.zip", "gradebook.db",
                                  "autograded/a/lstm/lstm.ipynb", "submitted/a/lstm/lstm.ipynb", "feedback/a.html",
                                  "nbgrader_grades.csv", "collected/a/lstm/lstm.ipynb"])
def test_grading_outputs_are_ignored_by_git(path):
    done = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO)
    assert done.returncode == 0, f"{path} is not ignored"


def test_nbgrader_export_in_the_repository_writes_the_file_the_readme_names():
    from traitlets.config.loader import PyFileConfigLoader
    loaded = PyFileConfigLoader("nbgrader_config.py", path=str(REPO)).load_config()
    assert loaded.ExportPlugin.to == "nbgrader_grades.csv"
    assert "nbgrader_grades.csv" in (REPO / "README.md").read_text()
