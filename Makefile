# The two commands of the README: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= ./pushmail-data

.PHONY: run test venv lint typecheck pytest bench clean docs-cluster docs-graph cluster

# Stamps: what is installed in .venv, redone only when pyproject.toml changes. `run`
# needs the package and its dependencies; `test` adds the test tools (mypy, ruff,
# playwright, ...), which `make run` never installs.
RUN_STAMP := $(VENV)/.stamp-run
TEST_STAMP := $(VENV)/.stamp-test

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(RUN_STAMP)

PG_STAMP := $(VENV)/.stamp-postgres
$(PG_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[postgres]'
	touch $@ $(RUN_STAMP)

venv: $(TEST_STAMP)

run: $(RUN_STAMP)
	$(BIN)/pushmail demo-user --data-dir $(DATA)
	$(BIN)/pushmail serve --data-dir $(DATA)

lint: venv
	$(BIN)/ruff check src tests $(wildcard bench)

typecheck: venv
	$(BIN)/mypy --strict src/

pytest: venv
	$(BIN)/pytest

test: lint typecheck pytest

# Scale benchmark (bench/README.md): pushmail at 1,000 and 10,000 idle sessions, then
# Dovecot with imap-hibernate at 10,000; about 6 minutes, capped at 14.5.
bench: venv
	$(BIN)/pip install -q -e '.[test,bench]'
	$(BIN)/python bench/idle_scale.py --n 1000,10000 --dovecot-n 10000 --hold 10 --timeout 870

# Two nodes on this machine sharing one PostgreSQL database and one NATS server, which
# must already run (docs/cluster.md, "Two nodes on one machine"); Ctrl-C stops both.
# Other servers or ports: make cluster CLUSTER_ARGS="--store postgresql://... --bus nats://..."
cluster: $(PG_STAMP)
	$(BIN)/python -m pushmail.cluster_demo $(CLUSTER_ARGS)

# docs/cluster.png from its source (needs Graphviz: apt install graphviz).
docs-cluster:
	dot -Tpng docs/cluster.dot -o docs/cluster.png

# docs/import_graph.png: the packages and the direction of their imports, from the
# source (docs/tools/import_graph.py; tests/test_import_graph.py keeps the .dot current).
docs-graph:
	$(PY) docs/tools/import_graph.py > docs/import_graph.dot
	dot -Tpng docs/import_graph.dot -o docs/import_graph.png

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
