# The two commands: `make demo` and `make test`. Each sets up what it needs first.
VENV := .venv
BIN := $(VENV)/bin
DATA ?= data
DEMO_SONGS ?= 120

.PHONY: setup demo test lint bench clean

setup:
	@scripts/bootstrap.sh

demo: setup
	$(BIN)/recsys demo --songs $(DEMO_SONGS)

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .

# every bench on the demo corpus (run `make demo` first), then BENCHMARKS.md
bench: setup
	$(BIN)/recsys bench all --corpus $(DATA)/demo-corpus-$(DEMO_SONGS)-0

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
