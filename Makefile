# Two commands on a fresh machine: `make run` (sample data through the whole graph) and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export MLOPS_DATA_DIR ?= $(CURDIR)/data
export DAGSTER_HOME ?= $(MLOPS_DATA_DIR)/dagster_home
# statsforecast, mlflow and dagster each try to phone home or warn at import; none of it is needed here.
export DAGSTER_DISABLE_TELEMETRY := 1
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR := false
PORT ?= 3000
SERVE_PORT ?= 5001
SERVE_POLL_SECONDS ?= 10

.PHONY: setup run dev test serve prometheus monitor mlflow-ui bench lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

run: setup $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m mlops_assets.sample_data --landing $(MLOPS_DATA_DIR)/landing
	$(BIN)/dagster asset materialize -m mlops_assets.definitions --select '*'
	$(BIN)/mlops-assets summary

dev: setup $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p $(PORT)

test: setup
	$(BIN)/ruff check mlops_assets mlops_assets_tests benchmarks
	$(BIN)/pytest -q

# The champion behind MLflow's scoring protocol, following the alias; /docs, /metrics, /version.
serve: setup
	$(BIN)/python -m mlops_assets.serving.app --port $(SERVE_PORT) --poll-seconds $(SERVE_POLL_SECONDS)

# A Prometheus on 127.0.0.1:9090 scraping `make serve` and evaluating its alert rules.
prometheus:
	prometheus --config.file=mlops_assets/monitoring/prometheus/prometheus.yml \
	  --storage.tsdb.path=$(MLOPS_DATA_DIR)/prometheus --web.listen-address=127.0.0.1:9090

# Evidently's UI on the workspace of monitoring/evidently_workspace: drift share and realized SMAPE over time.
monitor: setup
	$(BIN)/evidently ui --workspace $(MLOPS_DATA_DIR)/evidently --host 127.0.0.1 --port 8000

mlflow-ui: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(MLOPS_DATA_DIR)/mlflow/mlflow.db -h 127.0.0.1 -p 5000

bench: setup
	$(BIN)/python benchmarks/backtest_speed.py --sizes 1000,5000
	$(BIN)/python benchmarks/accuracy.py
	$(BIN)/python benchmarks/serving_latency.py
	$(BIN)/python benchmarks/automation_latency.py

lint: setup
	$(BIN)/ruff check mlops_assets mlops_assets_tests benchmarks

clean:
	rm -rf $(VENV) $(MLOPS_DATA_DIR)
