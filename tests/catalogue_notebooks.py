"""The catalogue's notebooks, graded once per test session (tests/conftest.py, `catalogue_graded`).

Each entry of assignments/lstm/misconceptions and each style of correct work
(assignments/lstm/styles) becomes a submission: the release notebook with the reference in every
answer cell, then the entry's functions pasted over theirs (autograder.judging.mutants.entry_notebook),
each under two student ids, so with two sets of hidden inputs; plus the reference alone (the
control) and one notebook with two mistakes. tests/test_misconceptions_grading.py checks the
grades, tests/test_checks_agree_with_grader.py compares them with the public checks."""
from assignments.lstm.misconceptions import load_catalogue
from assignments.lstm.styles import load_styles
from autograder.judging import mutants

CATALOGUE = load_catalogue()
STYLES = load_styles()
AGAIN = "__again"          # suffix of each submission's second student id (other hidden inputs)
TWO_MISTAKES = "two_mistakes"   # a tanh forget gate and backward passes that drop dnext_c


def student_ids(name):
    return (name, name + AGAIN)


def style_id(style):
    return f"style_{style.name}"


def notebooks(config):
    """{student id: notebook dict} of every submission above."""
    built = {mutants.CONTROL: mutants.entry_notebook(config, {})}
    for entry in CATALOGUE:
        built.update(dict.fromkeys(student_ids(entry.name), mutants.entry_notebook(config, entry.sources)))
    for style in STYLES:
        built.update(dict.fromkeys(student_ids(style_id(style)), mutants.entry_notebook(config, style.sources)))
    by_name = {e.name: e for e in CATALOGUE}
    built[TWO_MISTAKES] = mutants.entry_notebook(config, {
        **by_name["forget_gate_tanh"].sources, **by_name["backward_drops_dnext_c"].sources})
    return built
