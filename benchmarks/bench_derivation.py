"""Derivation cases: the CPU time of each kind of forward and backward pass against the reference's.

On sizes drawn as the grader draws its derivation cases (assignments/lstm/exercises.py), on one
BLAS thread (as in the student's process): the reference's forward and backward passes together,
against the same for honest passes (tests/test_attacks.py, tests/numerical_families.py) and for
every family of numerical differentiation (tests/numerical_families.py), each run as the
student's process would run it. A pass runs in a forked child, whose CPU time counts its threads
and the children it waits for (the session's cgroup counts those too), and is stopped after CAP
seconds. The grader's rule (grading.yml): the forward and backward calls together may take
derive_factor times the reference's CPU time, and never less than derive_cpu_floor_seconds.
Printed: per pass, its CPU time against the reference's (least and most over the cases), and
the verdict on each case.
"""
import inspect
import os
import pickle
import resource
import time

import autograder  # noqa: F401  (first: numpy's BLAS on one thread, as in the student's process)
import numpy as np

from assignments.lstm import exercises
from assignments.lstm.samples import OTHER_STYLE
from autograder import config as configuration
from solutions import lstm as reference
from tests import numerical_families as fam
from tests.test_attacks import (COMPRESSED_STEP, DIFFERENCES_AHEAD, HONEST_SLOW, PRE_ACTIVATION_DIFFERENCES,
                                forward_keeping_args)

CASES = 3
CAP = 2.0            # seconds of wall time a pass may run here
REPEATS = 5          # the reference: the least of these, as the grader takes three
STEP, SEQUENCE = ("x", "prev_h", "prev_c", "Wx", "Wh", "b"), ("x", "h0", "Wx", "Wh", "b")


def namespace(*sources):
    """The reference's functions, then `sources` over them, in one namespace (a notebook)."""
    ns = {"np": np}
    exec(inspect.getsource(reference), ns)
    for source in sources:
        exec(source, ns)
    return ns


def passes():
    """name -> ("step" | "sequence", the notebook's namespace)."""
    ks = forward_keeping_args("lstm_step_forward", inspect.getsource(reference.lstm_step_forward))
    kq = forward_keeping_args("lstm_forward", inspect.getsource(reference.lstm_forward))
    cs231n = (OTHER_STYLE["lstm_forward"], OTHER_STYLE["lstm_backward"])
    return {
        "honest step: per-sample loop": ("step", namespace(fam.HONEST_PER_SAMPLE_STEP)),
        "honest step: scalar loops": ("step", namespace(fam.HONEST_SCALAR_LOOPS_STEP)),
        "honest step: sigma' and tanh' by differences (f)": ("step", namespace(ks, fam.STEP_GATE_DERIVATIVES)),
        "step: compressed centred differences (a)": ("step", namespace(ks, COMPRESSED_STEP)),
        "step: the same, ahead in the forward pass": ("step", namespace(*DIFFERENCES_AHEAD.values())),
        "step: complex step (d)": ("step", namespace(ks, fam.STEP_COMPLEX)),
        "step: complex step on two threads (d)": ("step", namespace(ks, fam.STEP_COMPLEX_THREADS)),
        "step: complex step in a forked child (g)": ("step", namespace(ks, fam.in_a_child(fam.STEP_COMPLEX,
                                                                                           "lstm_step_backward"))),
        "step: coloured pre-activations (c), cost-blind": ("step", namespace(ks, fam.STEP_COLOURED)),
        "honest: CS231n loops over the steps": ("sequence", namespace(*cs231n)),
        "honest: loops over the batch, forward recomputed": ("sequence", namespace(*HONEST_SLOW.values())),
        "honest: CS231n loops over a scalar-loop step": ("sequence", namespace(fam.HONEST_SCALAR_LOOPS_STEP, *cs231n)),
        "honest: batch loops, forward recomputed, scalar-loop step": (
            "sequence", namespace(*HONEST_SLOW.values(), fam.HONEST_SCALAR_LOOPS_STEP)),
        "honest: sigma' and tanh' by differences (f)": ("sequence", namespace(kq, fam.SEQ_GATE_DERIVATIVES)),
        "pre-activation pushes, centred (b)": ("sequence", namespace(kq, fam.seq_pushes("centred"))),
        "pre-activation pushes, one-sided (e)": ("sequence", namespace(kq, fam.seq_pushes("one-sided"))),
        "state pushes, centred (b'')": ("sequence", namespace(kq, fam.state_pushes(False))),
        "state pushes, one-sided (e)": ("sequence", namespace(kq, fam.state_pushes(True))),
        "pushes by complex step (d)": ("sequence", namespace(kq, fam.seq_pushes("complex"))),
        "pre-activation differences, exact products": ("sequence", namespace(kq, PRE_ACTIVATION_DIFFERENCES)),
        "compressed inputs, weights entry by entry (b')": ("sequence", namespace(kq, fam.SEQ_COMPRESSED)),
        "Jacobian in the forward pass (g)": ("sequence", namespace(
            fam.forward_with_jacobian(inspect.getsource(reference.lstm_forward)), fam.FORWARD_JACOBIAN)),
        "coloured steps inside BPTT (c), cost-blind": ("sequence", namespace(kq, fam.SEQ_COLOURED)),
        "a hand-written reverse-mode tape (g), cost-blind": ("sequence", namespace(kq, fam.TAPE)),
    }


def forward_and_backward(ns, kind, case):
    if kind == "step":
        _, _, cache = ns["lstm_step_forward"](*[case[k] for k in STEP])
        return ns["lstm_step_backward"](case["dnext_h"], case["dnext_c"], cache)
    _, cache = ns["lstm_forward"](*[case[k] for k in SEQUENCE])
    return ns["lstm_backward"](case["dh"], cache)


def reference_cpu(kind, case):
    """The least CPU time of REPEATS forward and backward passes of the reference, here."""
    times = []
    for _ in range(REPEATS):
        started = time.process_time()
        forward_and_backward(reference.__dict__, kind, case)
        times.append(time.process_time() - started)
    return min(times)


def child_cpu(ns, kind, case):
    """CPU seconds of one pass in a forked child (threads, and the children it waits for,
    included), or None when it ran past CAP."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        started, children = time.process_time(), resource.getrusage(resource.RUSAGE_CHILDREN)
        forward_and_backward(ns, kind, case)
        waited = resource.getrusage(resource.RUSAGE_CHILDREN)
        spent = time.process_time() - started + waited.ru_utime + waited.ru_stime - children.ru_utime - children.ru_stime
        os.write(write, pickle.dumps(spent))
        os._exit(0)
    os.close(write)
    deadline = time.monotonic() + CAP
    while not os.waitpid(pid, os.WNOHANG)[0]:
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            os.close(read)
            return None
        time.sleep(0.001)
    with os.fdopen(read, "rb") as answer:
        return pickle.loads(answer.read())


def main():
    limits = configuration.load("lstm").limits
    print(f"\n== Derivation cases: CPU time of forward + backward against the reference's (limit: "
          f"{limits.derive_factor:g}x, at least {limits.derive_cpu_floor_seconds * 1e3:g} ms; a pass is "
          f"stopped after {CAP:g} s) ==")
    rng = np.random.default_rng(2026)
    cases = []
    for _ in range(CASES):
        n, t, d, h = exercises.larger_sizes(rng)
        cases.append({"step": exercises.step_case(rng, "a larger batch", n, d, h, 1.0),
                      "sequence": exercises.sequence_case(rng, "a longer sequence", n, t, d, h, 1.0)})
        print(f"case {len(cases)}: N={n} T={t} D={d} H={h}")
    base = {(k, kind): reference_cpu(kind, case[kind]) for k, case in enumerate(cases) for kind in ("step", "sequence")}
    for kind in ("step", "sequence"):
        print(f"reference {kind}: " + ", ".join(f"{base[k, kind] * 1e3:.2f} ms" for k in range(CASES)))
    for name, (kind, ns) in passes().items():
        ratios, verdicts, stopped = [], [], False
        for k, case in enumerate(cases):
            spent, reference_seconds = child_cpu(ns, kind, case[kind]), base[k, kind]
            limit = max(limits.derive_cpu_floor_seconds, limits.derive_factor * reference_seconds)
            stopped |= spent is None
            ratios.append((CAP if spent is None else spent) / reference_seconds)
            verdicts.append("flagged" if spent is None or spent > limit else "within")
        span = f"{min(ratios):.0f}-{max(ratios):.0f}x" + (f" (stopped at {CAP:g} s: more)" if stopped else "")
        print(f"  {name:58s} {span:30s} {' '.join(verdicts)}", flush=True)


if __name__ == "__main__":
    main()
