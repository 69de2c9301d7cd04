"""Derivation cases: what each numerical-differentiation family and each honest-but-slow style
costs against the reference, in wall time and in CPU time (issue 18 item 3; the families are
tests/numerical_families.py's notebook sources, run here as the student's process runs them).

On sizes drawn as the grader draws its derivation cases (assignments/lstm/exercises.py), one BLAS
thread (as in the sandbox). The reference's time is the best of three, as the grader takes it;
a student's pass is timed once, as the grader does (median over `--repeats` runs shown too).
Printed per family: the ratio distribution (min / median / max) over the cases, wall and CPU
(time.thread_time: the calling thread; time.process_time: the whole process), whether the
answer is within grading.yml's rtol, and whether today's limit (derive_factor x the reference,
at least derive_floor_seconds) lets it through.

    python benchmarks/bench_numerical_families.py [--cases 12] [--seed 2026] [--only NAME] [--t LO HI]
"""
import os

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse   # noqa: E402
import inspect   # noqa: E402
import statistics   # noqa: E402
import sys   # noqa: E402
import time   # noqa: E402
from pathlib import Path   # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np   # noqa: E402

from assignments.lstm import exercises   # noqa: E402
from assignments.lstm.samples import OTHER_STYLE   # noqa: E402
from autograder import config as configuration   # noqa: E402
from solutions import lstm as reference   # noqa: E402
from tests import numerical_families as fam   # noqa: E402
from tests.test_attacks import HONEST_SLOW, PRE_ACTIVATION_DIFFERENCES, forward_keeping_args   # noqa: E402

SEQ_ARGS = ("x", "h0", "Wx", "Wh", "b")
STEP_ARGS = ("x", "prev_h", "prev_c", "Wx", "Wh", "b")


def namespace(*sources):
    ns = {"np": np}
    exec(inspect.getsource(reference), ns)
    for source in sources:
        exec(source, ns)
    return ns


def keeping(name):
    return forward_keeping_args(name, inspect.getsource(getattr(reference, name)))


# name -> (kind, namespace); kind: "step" (lstm_step_backward) or "seq" (lstm_backward)
def passes():
    ks, kq = keeping("lstm_step_forward"), keeping("lstm_forward")
    return {
        # honest
        "honest: reference": ("seq", namespace()),
        "honest: CS231n loop over step backward": ("seq", namespace(OTHER_STYLE["lstm_forward"], OTHER_STYLE["lstm_backward"])),
        "honest: HONEST_SLOW (batch loops, forward recomputed)": ("seq", namespace(*HONEST_SLOW.values())),
        "honest: CS231n loop over a per-sample step": ("seq", namespace(fam.HONEST_PER_SAMPLE_STEP, OTHER_STYLE["lstm_forward"], OTHER_STYLE["lstm_backward"])),
        "honest: CS231n loop over a scalar-loop step": ("seq", namespace(fam.HONEST_SCALAR_LOOPS_STEP, OTHER_STYLE["lstm_forward"], OTHER_STYLE["lstm_backward"])),
        "honest: batch loops + forward recomputed + scalar-loop step": (
            "seq", namespace(HONEST_SLOW["lstm_forward"], HONEST_SLOW["lstm_backward"], fam.HONEST_SCALAR_LOOPS_STEP)),
        "honest step: reference": ("step", namespace()),
        "honest step: OTHER_STYLE (dict cache, prints)": ("step", namespace(OTHER_STYLE["lstm_step_forward"], OTHER_STYLE["lstm_step_backward"])),
        "honest step: per-sample loop": ("step", namespace(fam.HONEST_PER_SAMPLE_STEP)),
        "honest step: scalar loops": ("step", namespace(fam.HONEST_SCALAR_LOOPS_STEP)),
        "(f) step: gate derivatives by differences": ("step", namespace(ks, fam.STEP_GATE_DERIVATIVES)),
        "(f) seq: gate derivatives by differences": ("seq", namespace(kq, fam.SEQ_GATE_DERIVATIVES)),
        # numerical, single step
        "(a) step: compressed centred differences": ("step", namespace(ks, fam.STEP_COMPRESSED)),
        "(c) step: coloured pre-activation differences": ("step", namespace(ks, fam.STEP_COLOURED)),
        "(d) step: complex step, compressed": ("step", namespace(ks, fam.STEP_COMPLEX)),
        "(d) step: complex step, two threads": ("step", namespace(ks, fam.STEP_COMPLEX_THREADS)),
        "(g) step: complex step in a forked child": ("step", namespace(ks, fam.in_a_child(fam.STEP_COMPLEX, "lstm_step_backward"))),
        # numerical, sequence
        "(c) seq: coloured per-step differences inside BPTT": ("seq", namespace(kq, fam.SEQ_COLOURED)),
        "(b) seq: batched pre-activation pushes, centred": ("seq", namespace(kq, fam.seq_pushes("centred"))),
        "(b'') seq: state pushes, centred": ("seq", namespace(kq, fam.state_pushes(False))),
        "(e) seq: state pushes, one-sided": ("seq", namespace(kq, fam.state_pushes(True))),
        "(b') seq: compressed input differences, weights per entry": ("seq", namespace(kq, fam.SEQ_COMPRESSED)),
        "(d) seq: batched pushes, complex step": ("seq", namespace(kq, fam.seq_pushes("complex"))),
        "(e) seq: batched pushes, one-sided": ("seq", namespace(kq, fam.seq_pushes("one-sided"))),
        "(d) seq: complex step, two threads": ("seq", namespace(kq, fam.seq_pushes("complex threads"))),
        "(g) seq: (b) in a forked child": ("seq", namespace(kq, fam.in_a_child(fam.seq_pushes("centred"), "lstm_backward"))),
        "(old) seq: pre-activation differences (test_attacks)": ("seq", namespace(kq, PRE_ACTIVATION_DIFFERENCES)),
        "(g) seq: hand-written reverse-mode tape": ("seq", namespace(kq, fam.TAPE)),
        "(g) seq: Jacobian in the forward pass": ("seq", namespace(fam.forward_with_jacobian(inspect.getsource(reference.lstm_forward)),
                                                                    fam.FORWARD_JACOBIAN)),
    }


def timed(function):
    wall, thread, proc = time.perf_counter(), time.thread_time(), time.process_time()
    out = function()
    return out, time.perf_counter() - wall, time.thread_time() - thread, time.process_time() - proc


def rel_error(got, want):
    got = np.asarray(got, dtype=float)
    want = np.asarray(want, dtype=float)
    if got.shape != want.shape:
        return np.inf
    return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-300))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=9)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--only", default="", help="only the passes whose name holds this")
    parser.add_argument("--t", type=int, nargs=2, help="draw T from this range instead (what if the "
                        "derivation cases were longer?)")
    options = parser.parse_args()
    if options.t:
        exercises.LARGER["t"] = tuple(options.t)
    config = configuration.load("lstm")
    limits, rtol = config.limits, config.tolerance["rtol"]
    rng = np.random.default_rng(options.seed)
    cases = []
    for _ in range(options.cases):
        n, t, d, h = exercises.larger_sizes(rng)
        cases.append((exercises.sequence_case(rng, "seq", n, t, d, h, 1.0), exercises.step_case(rng, "step", n, d, h, 1.0)))
    rows = {}
    for name, (kind, ns) in passes().items():
        if options.only and options.only not in name:
            continue
        wall_r, cpu_r, proc_r, worst, walls, fwd_r = [], [], [], 0.0, [], []
        for seq, step in cases:
            case, args = (seq, SEQ_ARGS) if kind == "seq" else (step, STEP_ARGS)
            inputs = [case[k] for k in args]
            ref_fwd = getattr(reference, "lstm_forward" if kind == "seq" else "lstm_step_forward")
            ref_bwd = getattr(reference, "lstm_backward" if kind == "seq" else "lstm_step_backward")
            upstream = (case["dh"],) if kind == "seq" else (case["dnext_h"], case["dnext_c"])
            base_f = min(timed(lambda: ref_fwd(*inputs))[1] for _ in range(3))
            ref_cache = ref_fwd(*inputs)[-1]
            base = min(timed(lambda: ref_bwd(*upstream, ref_cache))[1:3] for _ in range(3))
            expected = ref_bwd(*upstream, ref_cache)
            own_fwd = ns["lstm_forward" if kind == "seq" else "lstm_step_forward"]
            own_bwd = ns["lstm_backward" if kind == "seq" else "lstm_step_backward"]
            fout, fwall, _, _ = timed(lambda: own_fwd(*inputs))
            got, wall, thread, proc = timed(lambda: own_bwd(*upstream, fout[-1]))
            worst = max(worst, max(rel_error(g, e) for g, e in zip(got, expected)))
            wall_r.append(wall / base[0])
            cpu_r.append(thread / max(base[1], 1e-6))
            proc_r.append(proc / max(base[1], 1e-6))
            walls.append(wall)
            fwd_r.append(fwall / base_f)
            passes_today = wall <= max(limits.derive_floor_seconds, limits.derive_factor * base[0])
            rows.setdefault(name, []).append(passes_today)
        q = lambda v: f"{min(v):8.0f} {statistics.median(v):8.0f} {max(v):8.0f}"
        today = "passes today" if all(rows[name]) else ("caught today" if not any(rows[name]) else "mixed today")
        print(f"{name:62s} wall x {q(wall_r)} | cpu(thread) x {q(cpu_r)} | cpu(proc) x {q(proc_r)} | "
              f"ms {statistics.median(walls) * 1e3:7.1f} | fwd x {statistics.median(fwd_r):6.0f} | "
              f"err {worst:.1e} {'OK' if worst <= rtol else 'WRONG'} | {today}", flush=True)


if __name__ == "__main__":
    main()
