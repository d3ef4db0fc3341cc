# edge-sdk: `make demo` and `make test` set everything up on a fresh machine (creating .venv) and run.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
# 2-core CI machine: two pytest workers
PYTEST_ARGS ?= -n 2 -q

.PHONY: help install demo test test-slow test-device-minimal bench lint clean

help:
	@echo "make demo   - set up .venv and run the end-to-end demo on the shipped reference data"
	@echo "make test   - set up .venv and run the default test suite (+ the torch-free device install test)"
	@echo "make test-slow - the slow runs (faithfulness tables etc.)"
	@echo "make bench  - benchmarks (tables printed, JSON written to bench-results/)"
	@echo "make lint   - ruff + mypy"

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml constraints.txt
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q -c constraints.txt -e ".[server,dev,fleet]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) tools/demo.py

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)
	$(MAKE) test-device-minimal

# The device runtime must work with the base package alone (no extras, no torch): install it into a
# fresh venv and run the device-side tests there.
test-device-minimal: $(STAMP)
	bash tools/test_device_minimal.sh

test-slow: $(STAMP)
	$(PY) -m pytest -m slow -q -p no:cacheprovider

bench: $(STAMP)
	mkdir -p bench-results
	$(PY) tools/bench.py --out bench-results

lint: $(STAMP)
	$(VENV)/bin/ruff check edge_sdk server device fleet tests tools
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) bench-results .pytest_cache build *.egg-info
