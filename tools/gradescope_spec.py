"""results.json checked against Gradescope's published autograder specification, field by field.

    problems(results) -> [str]     # empty when `results` (the parsed JSON) follows the specification

The specification (gradescope-autograders.readthedocs.io, "Autograder Specifications",
"Output format"): a top-level object with `score` (required unless every test has one),
`execution_time` (seconds), `output`, `output_format`, `test_output_format`, `test_name_format`,
`visibility`, `stdout_visibility`, `extra_data` (an object), `tests` (required without a
top-level score) and `leaderboard`; each test may have `score`, `max_score`, `status`
("passed"/"failed"), `name`, `name_format`, `number`, `output`, `output_format`, `tags` (a list
of strings), `visibility` and `extra_data`. Visibilities are hidden, after_due_date,
after_published and visible; formats are text, html, simple_format, md and ansi; new lines are
Unix ones. Anything else is reported, so a typo in a key cannot pass silently.
"""
import numbers

VISIBILITIES = {"hidden", "after_due_date", "after_published", "visible"}
FORMATS = {"text", "html", "simple_format", "md", "ansi"}
STATUSES = {"passed", "failed"}
NUMBER, TEXT, OBJECT, LIST = "a number", "a string", "an object", "a list"
TOP = {"score": NUMBER, "execution_time": NUMBER, "output": TEXT, "output_format": FORMATS,
       "test_output_format": FORMATS, "test_name_format": FORMATS, "visibility": VISIBILITIES,
       "stdout_visibility": VISIBILITIES, "extra_data": OBJECT, "tests": LIST, "leaderboard": LIST}
TEST = {"score": NUMBER, "max_score": NUMBER, "status": STATUSES, "name": TEXT, "name_format": FORMATS,
        "number": TEXT, "output": TEXT, "output_format": FORMATS, "tags": LIST, "visibility": VISIBILITIES,
        "extra_data": OBJECT}
LEADER = {"name": TEXT, "value": (NUMBER, TEXT), "order": {"asc", "desc"}}


def fits(value, kind):
    """True when `value` is of `kind`: NUMBER, TEXT, OBJECT, LIST, a set of allowed strings, or a
    tuple of kinds (any of them)."""
    if isinstance(kind, tuple):
        return any(fits(value, k) for k in kind)
    if isinstance(kind, (set, frozenset)):
        return value in kind
    return {NUMBER: isinstance(value, numbers.Real) and not isinstance(value, bool),
            TEXT: isinstance(value, str), OBJECT: isinstance(value, dict), LIST: isinstance(value, list)}[kind]


def fields(where, record, allowed):
    """Problems of one JSON object against {key: kind}: unknown keys, values of the wrong kind."""
    if not isinstance(record, dict):
        return [f"{where} is not an object"]
    found = []
    for key, value in record.items():
        if key not in allowed:
            found.append(f"{where}: unknown key {key!r}")
        elif not fits(value, allowed[key]):
            kind = allowed[key]
            expected = " or ".join(sorted(kind)) if isinstance(kind, (set, frozenset)) else kind
            found.append(f"{where}.{key} = {value!r}: expected {expected}")
        elif isinstance(value, str) and "\r" in value:
            found.append(f"{where}.{key}: new lines must be Unix ones (\\n)")
    return found


def problems(results):
    """Every way `results` departs from the specification, in words (empty: it follows it)."""
    found = fields("results", results, TOP)
    if found and found[0] == "results is not an object":
        return found
    tests = results.get("tests", [])
    for i, test in enumerate(tests if isinstance(tests, list) else []):
        found += fields(f"tests[{i}]", test, TEST)
        if isinstance(test, dict) and isinstance(test.get("tags"), list):
            found += [f"tests[{i}].tags: {tag!r} is not a string" for tag in test["tags"] if not isinstance(tag, str)]
    for i, entry in enumerate(results.get("leaderboard", []) or []):
        found += fields(f"leaderboard[{i}]", entry, LEADER)
    if "score" not in results:
        if not tests or not all(isinstance(t, dict) and "score" in t for t in tests):
            found.append("results: no top-level score, and not every test has one")
    return found
