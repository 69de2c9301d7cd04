# Every target creates and uses .venv by itself: `make demo` and `make test` work on a fresh machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export PATH := $(abspath $(VENV))/bin:$(PATH)
export PYTHONHASHSEED := 0
export MPLBACKEND := Agg
export OPENBLAS_NUM_THREADS := 1

.PHONY: venv sandbox browser test demo bench release gradescope-check clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# bubblewrap is the grader's kernel sandbox; without it the grader still isolates, less strictly
# (README, "Isolation"). Installed here when this is Debian/Ubuntu and we may; never fatal.
sandbox:
	@command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get install -y -qq bubblewrap >/dev/null 2>&1 || \
	   (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq bubblewrap >/dev/null 2>&1)); } || \
	  echo "note: bubblewrap not installed; grading uses plain processes (see README, Isolation)"

# chromium drives formgrader in the browser test (tests/test_ta_loop.py), through the venv's
# playwright; installed here like bubblewrap. Without it that one test skips and says why.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get install -y -qq chromium >/dev/null 2>&1 || \
	   (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1)); } || \
	  echo "note: chromium not installed; the formgrader browser test will skip"

test: $(STAMP) sandbox browser
	$(PY) -m pytest -q

demo: $(STAMP) sandbox release
	$(PY) -m autograder demo --assignment lstm --out demo-out

bench: $(STAMP) sandbox
	$(PY) -m benchmarks

release: $(STAMP)
	$(PY) -m tools.release lstm

# The Gradescope zip in a fresh Debian 12 image (README, "Gradescope"): root, debootstrap, the
# network and a few minutes; not part of `make test`.
gradescope-check: $(STAMP)
	@command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >/dev/null
	$(PY) -m tools.gradescope_check

clean:
	rm -rf demo-out bench-out .pytest_cache
