# Pantau's two commands: `make run` (the main job) and `make test` (the whole suite).
# Both set everything up from scratch: Debian packages, the virtualenv, the project.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
FUZZ_STAMP := $(VENV)/.fuzz-installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
FUZZ_ARGS ?=
PYTEST_ARGS ?=
# grafana-client needs niquests, whose urllib3-future wheel overwrites urllib3 at every start
# (a .pth file) and breaks requests-based tools (schemathesis in `make fuzz`). Built from its
# sdist with URLLIB3_NO_OVERRIDE it installs beside urllib3 as urllib3_future, which niquests
# uses as it is documented to.
PIP_INSTALL := URLLIB3_NO_OVERRIDE=1 $(BIN)/pip install -q --no-binary urllib3-future

.PHONY: run test lint bench fuzz deps venv fuzz-venv env-example clean

run: deps venv ## Start Mosquitto, InfluxDB, the ingester, the API and the simulators
	$(BIN)/pantau up

test: deps venv lint ## Lint, then the whole test suite against real services
	$(BIN)/pytest $(PYTEST_ARGS)

lint: venv ## ruff, mypy and the import-layer contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: deps venv ## Benchmarks; JSON results in bench/results/
	$(BIN)/python -m bench

fuzz: deps venv fuzz-venv ## Fuzz the decoders (libFuzzer, 100,000 cases each) and the API (no 5xx)
	$(BIN)/python -m fuzz $(FUZZ_ARGS)

fuzz-venv: $(FUZZ_STAMP)

$(FUZZ_STAMP): $(STAMP)
	$(PIP_INSTALL) -e '.[dev,fuzz]'
	@rm -f $(VENV)/.fuzz-installed-*
	@touch $@

deps: ## Debian packages (mosquitto, influxdb) when missing
	@scripts/debian-packages.sh

venv: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is needed"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(PIP_INSTALL) -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

env-example: venv ## Regenerate .env.example from the settings
	$(BIN)/pantau settings env-example -o .env.example

clean: ## Remove the virtualenv and all local data
	rm -rf $(VENV) var
