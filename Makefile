VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint bench
setup: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml constraints.txt .ci/setup.sh
	bash .ci/setup.sh $(VENV)

demo: setup
	$(BIN)/lessonlens demo

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: setup
	$(BIN)/python bench/run.py
