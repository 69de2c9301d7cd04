"""Generic notebook autograder: knows nothing about LSTMs.

An assignment (a module named in grading.yml, e.g. ``assignments.lstm``) supplies exercises,
hidden-case generators, probes and misconceptions; this package runs each submission in an
isolated process, calls the student's functions on hidden inputs, and judges the returned
arrays in its own process.

Here: the command line (cli), grading.yml (config, consistency), reading submissions (layout,
notebook), grading one and many (grade) and building sample submissions (samples). By role:
- process/: the student's process and its channel (sandbox, worker, guard, wire, channel, impl);
- judging/: comparing, partial credit and diagnosis (compare, exercise, mutants);
- outputs/: what grading writes (report, gradebook, scores, late, tables, staging: one run as one transaction);
- integrations/: Gradescope, and the LMS (lms/: collect, roster, export).
"""
import os

# The grader times the reference on derivation cases (judging.exercise.time_derivation_case) by
# its CPU time, against the student's, whose process runs numpy's BLAS on one thread: so does
# the grader's, wherever the grader is the first to load numpy (a BLAS thread pool's waiting
# counts as CPU time). Set before anything imports numpy.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
