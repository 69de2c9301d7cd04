"""Generic notebook autograder: knows nothing about LSTMs.

An assignment (a module named in grading.yml, e.g. ``assignments.lstm``) supplies exercises,
hidden-case generators, probes and misconceptions; this package runs each submission in an
isolated process, calls the student's functions on hidden inputs, and judges the returned
arrays in its own process.
"""
