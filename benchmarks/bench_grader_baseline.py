"""Grading throughput against earlier graders, same run.

Each grader of BASELINES (from git history) and today's each grade PER_ROUND copies of their own
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
BASELINES = {   # commit -> what it was, and the goal of today's grader against it
    "8aa1497": ("before the integrity work (issue 10)", 1.2),
    "f9c3313": ("before sessions of their own and stand-ins (issues 18, 19)", 1.1),
}
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


def baseline_tree(commit, folder):
    """The repository at `commit`, unpacked into `folder`; None where the history lacks it."""
    archive = subprocess.run(["git", "archive", commit], cwd=REPO, capture_output=True)
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
    print(f"\n== Grading throughput: today's grader vs {', '.join(BASELINES)}, 1 job, alternating rounds ==")
    with tempfile.TemporaryDirectory() as tmp:
        trees = {}
        for commit in BASELINES:
            folder = Path(tmp) / commit
            folder.mkdir()
            if baseline_tree(commit, folder) is None:
                print(f"skipped: commit {commit} is not in this clone's history")
            else:
                trees[commit] = folder
        times = {"today": [], **{commit: [] for commit in trees}}
        for _ in range(ROUNDS):
            for commit, tree in trees.items():
                times[commit] += per_submission(tree)
            times["today"] += per_submission(REPO)
    mine = statistics.median(times["today"])
    for name, seconds in times.items():
        low, _, high = statistics.quantiles(seconds, n=4)
        label = "today's grader" if name == "today" else f"grader at {name}"
        print(f"{label:20s}: {statistics.median(seconds):.3f} s per submission (quartiles {low:.3f}-{high:.3f}, "
              f"{len(seconds)} submissions)")
    for commit in trees:
        what, goal = BASELINES[commit]
        ratio = mine / statistics.median(times[commit])
        print(f"ratio to {commit}   : {ratio:.2f}   ({what}; goal <= {goal})")
        print(json.dumps({"baseline": commit, "ours_s": round(mine, 4),
                          "baseline_s": round(statistics.median(times[commit]), 4), "ratio": round(ratio, 3)}))


if __name__ == "__main__":
    main()
