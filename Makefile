# Every target sets up .venv by itself on a fresh machine.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-fast bench lint

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e ".[dev,s3,zstd,lz4,dali,bench,text,ray]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/quickstart.py

# two test processes, a test file each at a time (its module fixtures stay in
# one process): most tests wait on worker processes, servers and subprocesses
PYTEST := $(PY) -m pytest -q -n 2 --dist loadfile

test: $(STAMP)
	$(PYTEST) --durations=15

# the inner loop: no S3 server, no slow end-to-end tests
test-fast: $(STAMP)
	$(PYTEST) -m "not s3 and not slow"

bench: $(STAMP)
	$(PY) -m benchmarks

lint: $(STAMP)
	$(VENV)/bin/ruff check streamdag tests examples benchmarks
	$(VENV)/bin/ruff format --check streamdag tests examples benchmarks
	$(VENV)/bin/lint-imports

