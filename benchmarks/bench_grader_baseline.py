"""Grading throughput against the grader before the integrity work (issue 10), same run.

The grader at BASELINE (from git history) and today's each grade PER_ROUND copies of their own
solution notebook (the release with the reference's answer cells, demo cells removed, as in
bench_grader), one submission at a time, under the default sandbox, in alternating rounds of
fresh processes so that both meet the same machine load. `python -c SCRIPT` run in a tree's
root imports that tree's code, grading.yml and release. Each submission is timed on its own;
printed: the median seconds per submission of each over all rounds, their quartiles, and the
ratio of the medians (a shared machine's hiccups move means, not medians).
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BASELINE = "8aa1497"      # the last commit before the integrity work (issue 10)
ROUNDS, PER_ROUND = 6, 8

# Run in a tree's root: grade argv[2] copies of the tree's own solution notebook, written under
# argv[1], one at a time; print the seconds each took.
SCRIPT = """
import json, sys, time
sys.path.insert(0, ".")
from assignments.lstm.samples import solved
from autograder import config as configuration
from autograder.grade import Grader, find_submissions, grade_all
from autograder.samples import write_submission
from benchmarks.bench_grader import without_demos
config = configuration.load("lstm")
notebook = without_demos(solved()(config))
for k in range(int(sys.argv[2])):
    write_submission(sys.argv[1], f"s{k:02d}", config.name, config.notebook, notebook)
submissions = find_submissions(sys.argv[1], config.name, config.notebook)
grader = Grader.prepare(config)
grade_all(grader, submissions[:1], jobs=1)              # warm up: imports, caches
seconds, full = [], True
for submission in submissions:
    started = time.perf_counter()
    result, = grade_all(grader, [submission], jobs=1)
    seconds.append(time.perf_counter() - started)
    full = full and result["score"] == result["max_score"]
print(json.dumps({"seconds": seconds, "full": full}))
"""


def baseline_tree(folder):
    """The repository at BASELINE, unpacked into `folder`; None where the history lacks it."""
    archive = subprocess.run(["git", "archive", BASELINE], cwd=REPO, capture_output=True)
    if archive.returncode != 0:
        return None
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def per_submission(tree):
    """[seconds] of each submission graded by the grader in `tree`, in a fresh process."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    with tempfile.TemporaryDirectory() as submitted:
        done = subprocess.run([sys.executable, "-c", SCRIPT, submitted, str(PER_ROUND)], cwd=tree, env=env,
                              capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"grading in {tree} failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if not result["full"]:
        raise RuntimeError(f"the solution did not earn full marks in {tree}")
    return result["seconds"]


def main():
    print(f"\n== Grading throughput: today's grader vs the grader at {BASELINE} (before issue 10), 1 job ==")
    with tempfile.TemporaryDirectory() as tmp:
        old = baseline_tree(Path(tmp))
        if old is None:
            print(f"skipped: commit {BASELINE} is not in this clone's history")
            return
        ours, theirs = [], []
        for _ in range(ROUNDS):
            theirs += per_submission(old)
            ours += per_submission(REPO)
    mine, base = statistics.median(ours), statistics.median(theirs)
    for name, times in (("today's grader   ", ours), (f"grader at {BASELINE}", theirs)):
        low, _, high = statistics.quantiles(times, n=4)
        print(f"{name}: {statistics.median(times):.3f} s per submission (quartiles {low:.3f}-{high:.3f}, "
              f"{len(times)} submissions)")
    print(f"ratio            : {mine / base:.2f}   (issue 10's goal: <= 1.2)")
    print(json.dumps({"ours_s": round(mine, 4), "baseline_s": round(base, 4), "ratio": round(mine / base, 3)}))


if __name__ == "__main__":
    main()
