# Two commands do all the set-up on a fresh machine:
#   make demo   - builds .venv and CIFAR-10 (from $BENCH_SHARED_DATA or ../shared/data when present), runs the smoke search
#   make test   - builds .venv, runs the linter (make lint) and then the test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
SHARED ?= $(or $(BENCH_SHARED_DATA),../shared/data)

.PHONY: venv data lint test test-slow soak demo perf clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

# CIFAR-10 in the official python layout under data/ (from the shared JPEG copy on this workplace;
# real users put the official cifar-10-python.tar.gz into data/ instead)
data/cifar-10-batches-py/test_batch:
	@if [ -f data/cifar-10-python.tar.gz ]; then echo "official tarball found; it is unpacked on first use"; \
	elif [ -f $(SHARED)/cifar10/build.py ]; then $(PY) $(SHARED)/cifar10/build.py --out data; \
	else echo "CIFAR-10 missing: put cifar-10-python.tar.gz into data/ (see README)"; exit 2; fi

data: venv data/cifar-10-batches-py/test_batch

# ruff (pinned in requirements-dev.txt, configured in pyproject.toml): pyflakes' checks and lines over
# 110 characters, in every Python file and notebook that git does not ignore
lint: venv
	$(PY) -m ruff check .

# the lint runs first: a long line or an unused import fails the suite before pytest starts
test: venv lint data
	$(PY) -m pytest -q -m "not slow" tests

test-slow: venv data
	$(PY) -m pytest -q -m slow tests

soak: venv data
	$(PY) scripts/soak.py --minutes $${SOAK_MINUTES:-20}

demo: venv data
	$(PY) -m bench demo

perf: venv
	$(PY) -m bench perf

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
