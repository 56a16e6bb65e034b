# Thin wrapper over scripts/: every target sets up what it needs first.
VENV ?= .venv
PY := $(VENV)/bin/python
# The venv's console scripts (vigil, torchserve, torch-model-archiver) for every recipe.
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup demo test bench archives clean

setup:
	bash scripts/setup.sh

archives: setup
	$(VENV)/bin/vigil build --tiny

demo: setup
	$(PY) -m scripts.demo

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

# Baseline vs Vigil and the serving path's figures (about 15 minutes on 2 cores).
bench: setup
	$(VENV)/bin/vigil bench $(BENCH_ARGS)

clean:
	rm -rf archives/*.mar logs key_file.json .pytest_cache
