# Thin wrapper over scripts/: every target sets up what it needs first.
VENV ?= .venv
PY := $(VENV)/bin/python
# The venv's console scripts (vigil, torchserve, torch-model-archiver) for every recipe.
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup demo test test-unit test-orchestrator bench archives clean

setup:
	bash scripts/setup.sh

archives: setup
	$(VENV)/bin/vigil build --tiny

demo: setup
	$(PY) -m scripts.demo

# Everything: the fast tier and the integration tests against real services.
test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

# The fast tier for the inner loop (under a minute): no services, no archive builds.
test-unit: setup
	$(PY) -m pytest -m "not integration" $(PYTEST_ARGS)

# The orchestrator's unit tier under its own install, without torch (a venv of its own).
test-orchestrator:
	bash scripts/orchestrator_tests.sh $(PYTEST_ARGS)

# Baseline vs Vigil and the serving path's figures (about 15 minutes on 2 cores).
bench: setup
	$(PY) -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf archives/*.mar archives/catalogue.json logs key_file.json .pytest_cache
