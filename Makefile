# edge-sdk: `make demo` and `make test` set everything up on a fresh machine (creating .venv) and run.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
# Optional extra index for torch's CPU build, e.g. TORCH_INDEX=https://download.pytorch.org/whl/cpu (constraints.txt)
TORCH_INDEX ?=
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
# 2-core CI machine: two pytest workers
PYTEST_ARGS ?= -n 2 -q

.PHONY: help install demo test test-slow test-device-minimal bench bench-defaults bench-shards bench-peers lint wheel cli-docs check-docs clean accuracy-table

help:
	@echo "make demo   - set up .venv and run the end-to-end demo on the shipped reference data"
	@echo "make test   - set up .venv and run the default test suite (+ the torch-free device install test)"
	@echo "make test-slow - the slow runs (faithfulness tables etc.)"
	@echo "make bench  - benchmarks (tables printed, JSON written to bench-results/)"
	@echo "make bench-shards - sharded data generation rows/s: 1 process vs --shards 2/4 local and Ray"
	@echo "make bench-defaults - wall time of the default distill/quantize runs at 36x and 180x, quiet and contended (~15 min)"
	@echo "make bench-peers - device training step vs eager torch, onnxruntime-training, LiteRT, ExecuTorch (own venvs)"
	@echo "make lint   - ruff + mypy (every layer)"
	@echo "make wheel  - build the wheel a device installs (dist/)"
	@echo "make cli-docs - regenerate docs/cli.md from the commands' --help"
	@echo "make accuracy-table - regenerate docs/accuracy-per-byte.md and docs/rate_accuracy_beam.png (honest protocol, ~2 h on one core)"
	@echo "make check-docs - check every command shown in README.md, docs/ and the dataset cards (docs/README.md)"

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml constraints.txt
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q -c constraints.txt $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) -e ".[server,serve,dev,fleet]"
	@$(PY) -c "import torch; print('installed torch', torch.__version__, '(CUDA build)' if torch.version.cuda else '(CPU build)')"
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

# sharded data generation alone (64,000 rows: ~6 min on 2 cores; run it on a quiet machine)
bench-defaults: $(STAMP)
	mkdir -p bench-results
	$(PY) tools/bench_defaults.py --out bench-results

bench-shards: $(STAMP)
	mkdir -p bench-results
	$(PY) tools/bench.py --only datagen_shards --out bench-results

# Each peer runtime in its own venv under .venv-peers/ (the product's dependencies never change); a peer that
# cannot be installed is reported by the benchmark, the others still run. Run it on a quiet machine.
bench-peers: $(STAMP)
	bash tools/peers/install_peers.sh
	mkdir -p bench-results
	$(PY) tools/bench_peers.py --out bench-results

# ruff on every folder; mypy on every layer as the installed package edge_sdk (tools/typecheck.py: mypy cannot map
# the package-dir folders itself; the tool builds the installed layout and reports paths in the source folders)
lint: $(STAMP)
	$(VENV)/bin/ruff check edge_sdk server device serve fleet tests tools
	$(PY) tools/typecheck.py

# the wheel a device installs (docs/install.md): dist/edge_sdk_ran-<version>-py3-none-any.whl
wheel: $(STAMP)
	rm -rf build/lib build/bdist.*  # setuptools reuses build/lib: a stale file would end up in the wheel
	$(PIP) wheel -q --no-deps -w dist .

cli-docs: $(STAMP)
	$(PY) tools/gen_cli_docs.py

ACC_CACHE = bench-results/accuracy-per-byte.cache.json
accuracy-table: $(STAMP)
	$(PY) tools/accuracy_table.py --ratios 180,36 --cache $(ACC_CACHE) --out docs
	$(PY) tools/accuracy_table.py --ratios 1000,100,2 --selections random,kmeans --teacher kmeans --cache $(ACC_CACHE) --out docs --figure

check-docs: $(STAMP)
	$(PY) tools/check_docs.py

clean:
	rm -rf $(VENV) .venv-peers bench-results .pytest_cache build dist *.egg-info
