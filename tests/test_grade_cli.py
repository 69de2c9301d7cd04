"""CONTRACT sections 2-3: the command line, its outputs, determinism, what feedback may show."""
import csv
import inspect
import re

import numpy as np

from assignments.lstm import exercises
from autograder.grade import Grader
from solutions import lstm as reference
from tests.conftest import run_cli


def test_grades_csv_has_the_contract_header_and_a_row_per_student_folder(demo, config):
    out, _, _ = demo
    rows = list(csv.reader((out / "grades.csv").open()))
    assert rows[0] == ["student_id", *config.points, "late_penalty", "total", "max_score"]
    folders = sorted(p.name for p in (out / "submitted").iterdir() if p.is_dir())
    assert [r[0] for r in rows[1:]] == folders
    for row in rows[1:]:
        assert float(row[-2]) == sum(float(v) for v in row[1:-2])
        assert float(row[-1]) == config.max_score
    for student in folders:
        assert (out / "results" / f"{student}.json").is_file()
        assert (out / "feedback" / f"{student}.html").is_file()


def test_grading_twice_gives_the_same_grades(demo, tmp_path):
    out, _, _ = demo
    again = run_cli("grade", str(out / "submitted"), "--assignment", "lstm", "--out", str(tmp_path),
                    "--no-gradebook", "--jobs", "1")
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "grades.csv").read_text() == (out / "grades.csv").read_text()


def test_the_demo_prints_the_grade_table(demo):
    _, _, done = demo
    assert "correct" in done.stdout and "mean" in done.stdout and "total" in done.stdout
    assert "grading" in done.stderr  # the progress bar


def test_feedback_shows_no_reference_code_hidden_tests_or_inputs(demo):
    out, results, _ = demo
    secret_lines = set()
    for module in (reference, exercises):
        for line in inspect.getsource(module).splitlines():
            if len(line.strip()) > 25 and not line.strip().startswith(("#", '"', "def ")):
                secret_lines.add(line.strip())
    for page in (out / "feedback").glob("*.html"):
        text = page.read_text()
        assert not [s for s in secret_lines if s in text], page.name
        # no hidden input values: numbers in feedback are error sizes, indices and points only
        assert not re.search(r"\d\.\d{6,}", text), page.name


def test_bad_input_gives_a_clear_error_and_nonzero_exit(tmp_path):
    missing = run_cli("grade", str(tmp_path / "nope"), "--assignment", "lstm", "--out", str(tmp_path / "o"))
    assert missing.returncode != 0 and "is not a folder" in missing.stderr
    unknown = run_cli("grade", str(tmp_path), "--assignment", "nosuch", "--out", str(tmp_path / "o"))
    assert unknown.returncode != 0 and "no assignment 'nosuch'" in unknown.stderr


def test_an_empty_class_is_refused_with_a_reason(tmp_path, config):
    (tmp_path / "root").mkdir()
    done = run_cli("grade", str(tmp_path / "root"), "--assignment", "lstm", "--out", str(tmp_path / "o"),
                   "--no-gradebook")
    assert done.returncode != 0 and "has no student folders" in done.stderr
    assert not (tmp_path / "o" / "grades.csv").exists()


def test_hidden_inputs_are_seeded_per_student_and_assignment(config):
    grader = Grader(config, sandbox="none", misconceptions=[])
    first = exercises.sequence_cases(grader.rng("ada", "lstm_forward"))
    again = exercises.sequence_cases(grader.rng("ada", "lstm_forward"))
    other = exercises.sequence_cases(grader.rng("bob", "lstm_forward"))
    assert all(np.array_equal(a["x"], b["x"]) for a, b in zip(first, again))
    assert any(a["x"].shape != b["x"].shape or not np.array_equal(a["x"], b["x"]) for a, b in zip(first, other))


def test_hidden_inputs_are_seeded_by_every_bit_of_the_notebook(config):
    """No 32-bit hash on the way (a crc32 of the notebook's digest was collidable offline): the
    generator's entropy is the whole sha256 of grading.yml's seed, assignment, student, exercise
    and notebook digest."""
    grader = Grader(config, sandbox="none", misconceptions=[])
    entropy = grader.rng("ada", "lstm_gates", "ab" * 32).bit_generator.seed_seq.entropy
    assert entropy.bit_length() > 224
    assert entropy != grader.rng("ada", "lstm_gates", "ab" * 31 + "ac").bit_generator.seed_seq.entropy


def test_hidden_cases_use_shapes_public_checks_never_use(config):
    """N = 1, T = 1, D = 1, H = 1, D != H otherwise, a non-zero h0, saturated gates, and three
    larger cases drawn from one range; the backward passes' larger cases are derivation cases,
    with shapes from the same range as the forward passes' (nothing tells them apart)."""
    grader = Grader(config, sandbox="none", misconceptions=[])
    larger = exercises.LARGER
    for student in ("a", "b", "c"):
        cases = exercises.backward_cases(grader.rng(student, "lstm_backward"))
        seq = {c["label"]: c for c in cases}
        shapes = {label: c["x"].shape + c["h0"].shape[1:] for label, c in seq.items()}   # N, T, D, H
        assert shapes["one sample, one step"][:2] == (1, 1)
        assert shapes["hidden size 1"][3] == 1 and shapes["input size 1"][2] == 1
        derive = [c for c in cases if c.get("derive")]
        assert len(derive) == exercises.LARGER_CASES and all(c["label"] == "a longer sequence" for c in derive)
        for c in derive + [c for c in exercises.sequence_cases(grader.rng(student, "lstm_forward"))
                           if c["label"] == "a longer sequence"]:
            (n, t, d), h = c["x"].shape, c["h0"].shape[1]
            assert all(lo <= v <= hi for v, (lo, hi) in zip((n, t, d, h), (larger[k] for k in "ntdh")))
            assert t >= 4 and d != h
        assert not any(c.get("derive") for c in exercises.sequence_cases(grader.rng(student, "lstm_forward")))
        assert all(d != h for (_, _, d, h) in (c["x"].shape + c["h0"].shape[1:] for c in cases) if 1 not in (d, h))
        assert all(np.abs(c["h0"]).max() > 0 for c in cases)                         # non-zero h0
        step = {c["label"]: c for c in exercises.step_cases(grader.rng(student, "lstm_gates"))}
        assert step["one sample"]["x"].shape[0] == 1 and step["input size 1, saturated gates"]["x"].shape[1] == 1
        assert step["hidden size 1"]["prev_h"].shape[1] == 1 and step["a larger batch"]["x"].shape[0] >= 6
        assert sum(c.get("derive", False) for c in exercises.step_backward_cases(grader.rng(student, "s"))) == 3
        c = step["input size 1, saturated gates"]
        a = c["x"] @ c["Wx"] + c["prev_h"] @ c["Wh"] + c["b"]
        assert np.mean(np.abs(a) > 4) > 0.3                                          # saturated gates


def test_every_unreadable_file_gets_its_row_and_its_reason(tmp_path, config):
    """CONTRACT section 2: an empty, binary, truncated or non-notebook file is graded like any
    other submission: a row of zeros and a reason in its results, and the command exits 0."""
    import json
    bad = {
        "empty_file": (b"", "the notebook file is empty"),
        "binary_file": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "not UTF-8 text"),
        "truncated": (b'{"cells": [{"cell_type": "code", "source": "def sigm', "not valid JSON"),
        "json_list": (b"[1, 2, 3]", "not a Jupyter notebook"),
        "nbformat_3": (json.dumps({"nbformat": 3, "cells": [], "worksheets": []}).encode(),
                       "format 3 is not supported"),
    }
    root = tmp_path / "submitted"
    for student, (content, _) in bad.items():
        (root / student / "lstm").mkdir(parents=True)
        (root / student / "lstm" / config.notebook).write_bytes(content)
    done = run_cli("grade", str(root), "--assignment", "lstm", "--out", str(tmp_path / "out"), "--no-gradebook")
    assert done.returncode == 0, done.stderr
    rows = {r["student_id"]: r for r in csv.DictReader((tmp_path / "out" / "grades.csv").open())}
    assert set(rows) == set(bad)
    for student, (_, reason) in bad.items():
        assert float(rows[student]["total"]) == 0
        result = json.loads((tmp_path / "out" / "results" / f"{student}.json").read_text())
        assert result["status"] == "unreadable" and reason in result["reason"], (student, result["reason"])
        page = (tmp_path / "out" / "feedback" / f"{student}.html").read_text()
        assert reason.split()[-1] in page, student
