"""Derivation cases: how much slower than the reference each kind of backward pass is, same run.

On sizes drawn as the grader draws its derivation cases (assignments/lstm/exercises.py), in
this process: the reference's lstm_backward, an honest but slow one (Python loops over the
batch, the forward pass recomputed inside the backward: tests/test_attacks.py's HONEST_SLOW),
the pre-activations' gradient by centered differences over every sample at once followed by
exact products, and plain centered differences of the forward pass (the attack notebooks'
sources, run here as the student's process would). Printed: milliseconds and the ratio to the
reference, next to the limit grading.yml sets (derive_factor times the reference, at least
derive_floor_seconds).
"""
import inspect
import statistics
import time

import numpy as np

from assignments.lstm import exercises
from autograder import config as configuration
from solutions import lstm as reference
from tests.test_attacks import HONEST_SLOW, PRE_ACTIVATION_DIFFERENCES, finite_differences, forward_keeping_args

REPEATS = 3


def namespace(*sources):
    """The reference's functions, then `sources` over them, in one namespace (a notebook)."""
    ns = {"np": np}
    exec(inspect.getsource(reference), ns)
    for source in sources:
        exec(source, ns)
    return ns


def best(function, repeats=REPEATS):
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def main():
    limits = configuration.load("lstm").limits
    keeping = forward_keeping_args("lstm_forward", inspect.getsource(reference.lstm_forward))
    passes = {
        "honest, slow (loops over the batch, forward recomputed)": namespace(*HONEST_SLOW.values()),
        "pre-activation differences, exact products": namespace(keeping, PRE_ACTIVATION_DIFFERENCES),
        "plain centered differences": namespace(keeping, finite_differences("lstm_backward", "lstm_forward", 1)),
    }
    print(f"\n== Derivation cases: backward passes against the reference (limit: {limits.derive_factor:g}x the "
          f"reference, at least {limits.derive_floor_seconds:g} s) ==")
    rng = np.random.default_rng(2026)
    ratios = {name: [] for name in passes}
    for _ in range(3):
        n, t, d, h = exercises.larger_sizes(rng)
        case = exercises.sequence_case(rng, "a longer sequence", n, t, d, h, 1.0)
        args = [case[k] for k in ("x", "h0", "Wx", "Wh", "b")]
        _, cache = reference.lstm_forward(*args)
        base = best(lambda: reference.lstm_backward(case["dh"], cache))
        limit = max(limits.derive_floor_seconds, limits.derive_factor * base)
        print(f"N={n} T={t} D={d} H={h}: reference {base * 1e3:.2f} ms, limit {limit * 1e3:.0f} ms")
        for name, ns in passes.items():
            _, own_cache = ns["lstm_forward"](*args)
            seconds = best(lambda: ns["lstm_backward"](case["dh"], own_cache), 1)
            ratios[name].append(seconds / base)
            verdict = "flagged" if seconds > limit else "within the limit"
            print(f"  {name:58s} {seconds * 1e3:9.1f} ms  {seconds / base:7.0f}x  {verdict}")
    for name, values in ratios.items():
        print(f"{name:60s} median {statistics.median(values):.0f}x the reference")


if __name__ == "__main__":
    main()
