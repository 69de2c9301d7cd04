"""Judging in the grader's own process: comparing values (compare), exercises with per-case
credit, second opinions and diagnosis (exercise), and the misconception catalogue graded as
real submissions (mutants)."""
