"""The gradebook phase against grading itself, for a class of 300 (issue: at most a quarter).

Both phases run on the same 300 correct submissions (the solution notebook with its `demo`
cells removed, each answering a written question so formgrader has work), in the same run:
grading with every core, then recording every result in a fresh nbgrader gradebook
(autograded notebooks, scores, comments, late penalty), as `python -m autograder grade` does.
`python -m benchmarks gradebook` runs only this; BENCH_CLASS=60 makes the class smaller.
"""
import json
import os
import tempfile
import time
from pathlib import Path

from assignments.lstm.samples import solved
from autograder import config as configuration
from autograder.outputs import gradebook, late
from autograder.grade import Grader, find_submissions, grade_all
from autograder.samples import write_submission
from benchmarks.bench_grader import without_demos


def main():
    students = int(os.environ.get("BENCH_CLASS", "300"))
    config = configuration.load("lstm")
    print(f"\n== Gradebook phase vs grading ({students} submissions, {os.cpu_count()} cores) ==")
    notebook = without_demos(solved()(config))
    for cell in notebook["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == next(iter(config.manual)):
            cell["source"] = "The cell state is updated additively."
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "submitted"
        for k in range(students):
            write_submission(root, f"s{k:03d}", config.name, config.notebook, notebook)
        submissions = find_submissions(root, config.name, config.notebook)
        grader = Grader.prepare(config)
        started = time.perf_counter()
        results = grade_all(grader, submissions)
        grading = time.perf_counter() - started
        for result in results:
            late.annotate(result, config.late, None, config.full_points)
        started = time.perf_counter()
        gradebook.write(config, results, submissions, Path(tmp) / "course" / "gradebook.db", quiet=True)
        book = time.perf_counter() - started
        started = time.perf_counter()
        gradebook.write(config, results, submissions, Path(tmp) / "course" / "gradebook.db", quiet=True)
        again = time.perf_counter() - started
    print(f"grading                    : {grading:7.2f} s  ({grading / students:.3f} s per submission)")
    print(f"gradebook phase, new db    : {book:7.2f} s  ({book / students:.3f} s per submission)")
    print(f"gradebook phase, regrade   : {again:7.2f} s")
    print(f"ratio gradebook / grading  : {book / grading:7.3f}   (goal <= 0.25)")
    print(json.dumps({"students": students, "grading_s": round(grading, 2), "gradebook_s": round(book, 2),
                      "gradebook_regrade_s": round(again, 2), "ratio": round(book / grading, 3)}))


if __name__ == "__main__":
    main()
