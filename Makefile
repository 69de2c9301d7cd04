# Every target creates and uses .venv by itself: `make demo` and `make test` work on a fresh machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export PATH := $(abspath $(VENV))/bin:$(PATH)
export PYTHONHASHSEED := 0
export MPLBACKEND := Agg

.PHONY: venv test demo bench release clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(PY) -m autograder demo --assignment lstm --out demo-out

bench: $(STAMP)
	$(PY) -m benchmarks

release: $(STAMP)
	$(PY) -m tools.release lstm

clean:
	rm -rf demo-out bench-out gradebook.db submitted autograded feedback .pytest_cache
