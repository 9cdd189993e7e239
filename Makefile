# kassa: `make demo` and `make test` are the two commands a new machine needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: bootstrap demo test bench bench-quick bench-ab lint services-up services-down env-example grafana-board clean

## bootstrap: Python deps (pinned), Java/Maven/redis-server checks, Kafka jars
bootstrap: $(STAMP)
	@scripts/ensure-system-deps.sh
	@$(BIN)/kassa services fetch >/dev/null

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "kassa needs Python >= 3.11, found " + sys.version' 
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

## demo: start Kafka and Redis, run the end-to-end demo, print what it did
demo: bootstrap
	@scripts/demo.sh

## test: lint, then the whole suite against real Kafka and Redis started by the tests themselves
## (two workers, a test file each at a time; each worker starts its own services)
test: bootstrap lint
	$(BIN)/pytest -n 2 --dist loadfile

## bench: every benchmark at full size on services it starts (KASSA_* settings); writes
## BENCHMARKS.md, bench/results/*.json and the plots
bench: bootstrap
	$(BIN)/python -m bench --services --command "make bench"

## bench-quick: the same benchmarks on smaller workloads, fewer repetitions (under 5 minutes)
bench-quick: bootstrap
	$(BIN)/python -m bench --services --quick --command "make bench-quick"

## bench-ab: the stream and daily benchmarks of two revisions, alternated in one session
## (make bench-ab A=<rev> B=<rev>): medians and B/A ratios
bench-ab: bootstrap
	scripts/bench-ab.sh $(A) $(B)

## lint: formatting, lint rules and strict typing
lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

services-up: bootstrap
	$(BIN)/kassa services up

services-down: $(STAMP)
	$(BIN)/kassa services down

env-example: $(STAMP)
	$(BIN)/python -c 'from common.environment import env_example; print(env_example(), end="")' > .env.example

## grafana-board: regenerate deploy/grafana/kassa.json from deploy/grafana/board.py
grafana-board: $(STAMP)
	$(BIN)/python deploy/grafana/board.py > deploy/grafana/kassa.json

clean:
	-$(BIN)/kassa services down
	rm -rf $(VENV) .kassa data
