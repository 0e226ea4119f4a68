# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: run test lint deploy-check faults bench loadtest wrk browser cxx install install-dev install-fish install-loadtest clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install whenever pyproject.toml changes.
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	@touch $@

# Fish Speech: our extra first, then fish-speech and the codec packages without
# their own (conflicting) dependencies. The tests run the Fish path on a CPU.
NODEPS := requirements-fish-nodeps.txt

$(VENV)/.installed-dev: pyproject.toml $(NODEPS) | $(BIN)/python
	$(PIP) install -e '.[dev,fish]'
	$(PIP) install --no-deps -r $(NODEPS)
	@touch $@ $(VENV)/.installed-run $(VENV)/.installed-fish $(VENV)/.installed-loadtest

# Load tests: Locust, the kubernetes client and matplotlib (the dev tools include them).
$(VENV)/.installed-loadtest: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[loadtest]'
	@touch $@ $(VENV)/.installed-run

$(VENV)/.installed-fish: pyproject.toml $(NODEPS) | $(BIN)/python
	$(PIP) install -e '.[fish]'
	$(PIP) install --no-deps -r $(NODEPS)
	@touch $@ $(VENV)/.installed-run

install: $(VENV)/.installed-run
install-dev: $(VENV)/.installed-dev
install-loadtest: $(VENV)/.installed-loadtest
## install-fish: what a Fish Speech (GPU) worker needs, without the dev tools
install-fish: $(VENV)/.installed-fish

## run: the whole local stack in the foreground (Redis, S3, gateway, workers)
run: install
	$(BIN)/shoal up

## test: lint, types, architecture contracts, then the test suite on real services
test: install-dev lint browser cxx
	$(BIN)/pytest

## deploy-check: only the deployment's checks (tests/deploy; `make test` runs them too)
deploy-check: install-dev
	$(BIN)/pytest tests/deploy -q

## faults: the fault-injection suite, long versions (a few minutes); `make test` runs short ones
faults: install-dev
	SHOAL_FAULTS=full $(BIN)/pytest tests/faults -s -q --timeout 900

## bench: gateway, pipeline and streaming benchmarks against same-run baselines (a few minutes)
bench: install-dev wrk
	$(BIN)/python -m bench.gateway
	$(BIN)/python -m bench.pipeline
	$(BIN)/python -m bench.streaming

## loadtest: a spike against a fresh local stack, autoscaled; results/ gets the
## Locust report, the CSVs and the picture; ends with the tally line (a few minutes)
loadtest: install-loadtest
	$(BIN)/python -m loadtest.spike

# The load generator: Debian's wrk (C, not the bottleneck).
wrk:
	@command -v wrk >/dev/null || apt-get install -y -q wrk || sudo apt-get install -y -q wrk

# The browser tests' headless Chromium and its driver: Debian's, never a download
# of Selenium's or Playwright's own (a fresh machine's apt lists may be empty).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { apt-get update -q && apt-get install -y -q chromium chromium-driver; } || \
	  { sudo apt-get update -q && sudo apt-get install -y -q chromium chromium-driver; }

# A C++ compiler: Inductor's CPU backend builds the compiled decode units in the tests.
cxx:
	@command -v g++ >/dev/null || \
	  { apt-get update -q && apt-get install -y -q g++; } || \
	  { sudo apt-get update -q && sudo apt-get install -y -q g++; }

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .shoal .pytest_cache .ruff_cache .mypy_cache results
