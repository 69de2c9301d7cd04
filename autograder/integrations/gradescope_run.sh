#!/usr/bin/env bash
# Gradescope runs this as run_autograder, as root in /autograder, for every submission
# (AUTOGRADER_ROOT: elsewhere, for tests). The student's cells run only in the grader's sandboxed
# worker, never here. Whatever fails, results/results.json is written: by the grader, else by
# `fallback` below, which needs nothing but the shell. Written into the zip by
# `python -m autograder gradescope` (@PY@, @VENV@, @ASSIGNMENT@, @CATALOGUE@, @SECRET@, @FAILED@).
set -u
ROOT="${AUTOGRADER_ROOT:-/autograder}"
PYTHON="${AUTOGRADER_PYTHON:-@VENV@/bin/python}"   # setup.sh's; AUTOGRADER_PYTHON: another (tests)
RESULTS="$ROOT/results/results.json"

fallback() {   # $1: what went wrong and what to do, for the course staff (this log and extra_data)
  echo "AUTOGRADER ERROR (for the course staff): $1"
  local staff
  staff=$(printf '%s' "$1" | tr -d '\000-\037' | sed 's/\\/\\\\/g; s/"/\\"/g')
  mkdir -p "$ROOT/results"
  printf '{"score": 0.0, "output": "%s", "output_format": "text", "stdout_visibility": "hidden", "tests": [], "extra_data": {"autograder_error": "%s"}}\n' \
    "@FAILED@" "$staff" > "$RESULTS"
  exit 0
}

REBUILD="setup.sh did not finish or the image is not this zip's: on Gradescope, Configure Autograder, upload the zip again and read the build log (setup.sh names each step)"
[ -x "$PYTHON" ] || PYTHON="$(command -v python@PY@ || true)"
[ -n "$PYTHON" ] || fallback "no Python @PY@ here (@VENV@/bin/python is missing and python@PY@ is not on PATH). $REBUILD."
PROBE='import importlib.util as u, sys
print("%d.%d" % sys.version_info[:2], *[n for n in ("numpy", "yaml", "matplotlib") if u.find_spec(n) is None])'
FOUND=$("$PYTHON" -E -s -c "$PROBE" 2>&1) || fallback "$PYTHON does not run ($(printf '%s' "$FOUND" | tail -n 1)). $REBUILD."
read -r VERSION MISSING <<< "$FOUND"
[ "$VERSION" = "@PY@" ] || fallback "$PYTHON is Python $VERSION; the zip's bytecode (the reference, the hidden tests, @CATALOGUE@) loads only on Python @PY@. $REBUILD."
[ -z "$MISSING" ] || fallback "$PYTHON lacks the package(s) $MISSING. $REBUILD."

chmod 700 "$ROOT/source" "$ROOT/results"
chmod -R go-rwx "$ROOT/source/grading.yml" "$ROOT/source/@CATALOGUE@" @SECRET@
[ -f "$ROOT/submission_metadata.json" ] && chmod 600 "$ROOT/submission_metadata.json"
rm -f "$RESULTS"
(cd "$ROOT/source" && "$PYTHON" -E -s -m autograder.integrations.gradescope --assignment @ASSIGNMENT@ "$ROOT")
STATUS=$?
[ -s "$RESULTS" ] || fallback "the grader stopped (exit status $STATUS) without writing results.json: its error is above in this log."
exit 0
