"""Mutation testing of the grader: the misconception catalogue graded as notebooks.

Every entry of the catalogue (plus a reference-only control) is graded by the real grader,
sandboxed and in parallel (autograder.judging.mutants). Prints the detection rate (entries losing
points on exactly their AFFECTS), the diagnosis accuracy (affected exercises that name the
entry), and how long the whole catalogue takes with 1 job and with every core.
"""
import json
import os
import time

from autograder import config as configuration
from autograder.judging import mutants
from autograder.grade import Grader


def main():
    config = configuration.load("lstm")
    print(f"\n== Misconceptions: the catalogue of '{config.name}' graded as notebooks ==")
    started = time.monotonic()
    grader = Grader.prepare(config)
    prepare = time.monotonic() - started
    jobs = os.cpu_count() or 1
    timings = {}
    for n in sorted({1, jobs}):
        started = time.monotonic()
        report = mutants.run(config, jobs=n, grader=grader)
        timings[n] = time.monotonic() - started
    print(mutants.format_report(report, config).split("\n", 2)[2])   # without the table's header
    count = len(report.entries) + 1
    sandbox = grader.sandbox
    print(f"grader set-up (catalogue modules) : {prepare:7.3f} s")
    for n, seconds in timings.items():
        print(f"{count} notebooks, {n} job(s) ({sandbox}) : {seconds:7.2f} s  ({seconds / count:.3f} s per notebook)")
    print(json.dumps({"entries": len(report.entries), "detection_rate": report.detection_rate,
                      "diagnosis_accuracy": report.diagnosis_accuracy, "control_ok": report.control_ok,
                      "seconds_by_jobs": {str(n): round(s, 3) for n, s in timings.items()}}))


if __name__ == "__main__":
    main()
