"""Derivation cases: the CPU time of each kind of forward and backward pass against the reference's.

On sizes drawn as the grader draws its derivation cases (assignments/lstm/exercises.py), in
this process and on one BLAS thread (the student's process has one): the reference's forward
and backward passes together, and the same for honest passes and for the attack notebooks'
sources (tests/test_attacks.py), run as the student's process would run them. The grader's rule
(grading.yml): the forward and backward calls together may take derive_factor times the
reference's CPU time, and never less than derive_cpu_floor_seconds. Printed: milliseconds, the
ratio to the reference and the verdict. Plain centered differences of the sequence are timed on
their first DIFFERENCES columns and scaled to all of them (a full run takes minutes).
"""
import inspect
import statistics
import time

import autograder  # noqa: F401  (first: numpy's BLAS on one thread, as in the student's process)
import numpy as np

from assignments.lstm import exercises
from autograder import config as configuration
from solutions import lstm as reference
from tests.test_attacks import (COMPRESSED_STEP, DIFFERENCES_AHEAD, HONEST_SLOW, PRE_ACTIVATION_DIFFERENCES,
                                forward_keeping_args)

REPEATS = 5
DIFFERENCES = 200
STEP, SEQUENCE = ("x", "prev_h", "prev_c", "Wx", "Wh", "b"), ("x", "h0", "Wx", "Wh", "b")


def namespace(*sources):
    """The reference's functions, then `sources` over them, in one namespace (a notebook)."""
    ns = {"np": np}
    exec(inspect.getsource(reference), ns)
    for source in sources:
        exec(source, ns)
    return ns


def cpu(function, repeats=REPEATS):
    """The least CPU time of `repeats` runs of function(), in seconds."""
    times = []
    for _ in range(repeats):
        started = time.process_time()
        function()
        times.append(time.process_time() - started)
    return min(times)


def step_pass(ns, case):
    _, _, cache = ns["lstm_step_forward"](*[case[k] for k in STEP])
    return ns["lstm_step_backward"](case["dnext_h"], case["dnext_c"], cache)


def sequence_pass(ns, case):
    _, cache = ns["lstm_forward"](*[case[k] for k in SEQUENCE])
    return ns["lstm_backward"](case["dh"], cache)


def plain_differences_estimate(case):
    """CPU seconds of centered differences of lstm_forward over every entry of its arguments,
    scaled from the first DIFFERENCES of them."""
    args = [np.array(case[k], dtype=float) for k in SEQUENCE]
    entries = sum(a.size for a in args)
    flat = args[2].reshape(-1)

    def some():
        for k in range(DIFFERENCES):
            flat[k] += 1e-6
            plus = float(np.sum(case["dh"] * reference.lstm_forward(*args)[0]))
            flat[k] -= 2e-6
            minus = float(np.sum(case["dh"] * reference.lstm_forward(*args)[0]))
            flat[k] += 1e-6
            _ = (plus - minus) / 2e-6
    return cpu(some, 1) * entries / DIFFERENCES


def main():
    limits = configuration.load("lstm").limits
    keeping_step = forward_keeping_args("lstm_step_forward", inspect.getsource(reference.lstm_step_forward))
    keeping = forward_keeping_args("lstm_forward", inspect.getsource(reference.lstm_forward))
    steps = {
        "compressed centered differences": namespace(keeping_step, COMPRESSED_STEP),
        "the same differences, done ahead in the forward pass": namespace(*DIFFERENCES_AHEAD.values()),
    }
    sequences = {
        "honest, slow (loops over the batch, forward recomputed)": namespace(*HONEST_SLOW.values()),
        "pre-activation differences, exact products": namespace(keeping, PRE_ACTIVATION_DIFFERENCES),
    }
    print(f"\n== Derivation cases: CPU time of forward + backward against the reference's (limit: "
          f"{limits.derive_factor:g}x, at least {limits.derive_cpu_floor_seconds * 1e3:g} ms) ==")
    rng = np.random.default_rng(2026)
    ratios = {}
    for _ in range(3):
        n, t, d, h = exercises.larger_sizes(rng)
        step = exercises.step_case(rng, "a larger batch", n, d, h, 1.0)
        sequence = exercises.sequence_case(rng, "a longer sequence", n, t, d, h, 1.0)
        for kind, case, run, passes in (("lstm_step_backward", step, step_pass, steps),
                                        ("lstm_backward", sequence, sequence_pass, sequences)):
            base = cpu(lambda: run(reference.__dict__, case))
            limit = max(limits.derive_cpu_floor_seconds, limits.derive_factor * base)
            print(f"{kind} N={n}{f' T={t}' if kind == 'lstm_backward' else ''} D={d} H={h}: reference "
                  f"{base * 1e3:.2f} ms, limit {limit * 1e3:.1f} ms")
            timed = {name: cpu(lambda: run(ns, case), 1) for name, ns in passes.items()}
            if kind == "lstm_backward":
                timed[f"plain centered differences (from {DIFFERENCES} entries)"] = plain_differences_estimate(case)
            for name, seconds in timed.items():
                ratios.setdefault(f"{kind}: {name}", []).append(seconds / base)
                verdict = "flagged" if seconds > limit else "within the limit"
                print(f"  {name:58s} {seconds * 1e3:10.1f} ms  {seconds / base:8.0f}x  {verdict}")
    for name, values in ratios.items():
        print(f"{name:80s} {min(values):.0f}-{max(values):.0f}x the reference")


if __name__ == "__main__":
    main()
