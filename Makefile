# Two commands on a fresh machine: `make run` (sample data through the whole graph) and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export MLOPS_DATA_DIR ?= $(CURDIR)/data
export DAGSTER_HOME ?= $(MLOPS_DATA_DIR)/dagster_home
# statsforecast, mlflow and dagster each try to phone home or warn at import; none of it is needed here.
export DAGSTER_DISABLE_TELEMETRY := 1
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR := false
PORT ?= 3000
# Empty: the settings' serving section decides (port 5001, poll every 10 s); set, they override it.
SERVE_PORT ?=
SERVE_POLL_SECONDS ?=
MLFLOW_PORT ?= 5000
MONITOR_PORT ?= 8000
EXPLORE_PORT ?= 8050
# System programs the end-to-end tests drive, and the Debian package that provides each.
TEST_PROGRAMS := /usr/bin/chromium:chromium /usr/bin/promtool:prometheus /usr/bin/prometheus:prometheus
APT_GET ?= apt-get
# dg (Dagster's project CLI) runs the code location in this virtual environment, named as if it were activated.
DG := VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/dg

.PHONY: setup system-packages run dev test test-fast serve explore prometheus monitor mlflow-ui bench lint clean

setup: $(VENV)/.installed

# pip prints a "Collecting" or "Processing" line per package: shown as a running count; the full log in the venv.
$(VENV)/.installed: pyproject.toml
	@start=$$SECONDS; echo "setup 1/2: virtual environment $(VENV) ($(PYTHON))"; \
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); \
	$(BIN)/python -m pip install --quiet --upgrade pip; \
	echo "setup 2/2: installing mlops_assets and its dependencies (2-6 min the first time; log: $(VENV)/install.log)"; \
	$(BIN)/pip install --progress-bar off -e '.[test]' 2>&1 | tee $(VENV)/install.log | awk \
	  '/^(Collecting|Processing) /{n++; if (n % 25 == 0) printf "  %d packages resolved (%d s)\n", n, systime() - t0; fflush()} \
	   /^Installing collected/{printf "  installing %d packages (%d s)\n", n, systime() - t0; fflush()} \
	   /^Successfully installed/{print "  done"}' t0="$$(date +%s)" \
	  || { echo "install failed; the last lines of $(VENV)/install.log:"; tail -20 $(VENV)/install.log; exit 1; }; \
	touch $@; echo "setup took $$((SECONDS - start)) s"

# The browser and Prometheus tests drive Debian's programs: installed with apt when root, else one command to run.
system-packages:
	@missing=""; for entry in $(TEST_PROGRAMS); do \
	  test -x "$${entry%%:*}" || missing="$$missing $${entry##*:}"; done; \
	missing=$$(echo $$missing | tr ' ' '\n' | sort -u | tr '\n' ' ' | sed 's/ $$//'); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v $(APT_GET) >/dev/null; then \
	  start=$$SECONDS; echo "installing Debian packages the tests need: $$missing (apt-get, about a minute)"; \
	  $(APT_GET) update -qq && DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq --no-install-recommends $$missing >/dev/null; \
	  echo "  done in $$((SECONDS - start)) s"; \
	else \
	  echo "make test needs the Debian packages $$missing. Install them, then run make test again:"; \
	  echo "  sudo apt-get install -y --no-install-recommends $$missing"; exit 2; \
	fi

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

run: setup $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m mlops_assets.sample_data --landing $(MLOPS_DATA_DIR)/landing
	$(BIN)/mlops-assets materialize
	$(BIN)/mlops-assets summary

# The daemon logs every sensor tick at info (about 85 lines a minute): warning keeps the console for what
# needs a look; runs, ticks and their logs are all in the UI. DEV_LOG_LEVEL=info brings the ticks back.
DEV_LOG_LEVEL ?= warning
dev: setup $(DAGSTER_HOME)/dagster.yaml
	@echo "Dagster UI on http://127.0.0.1:$(PORT) in a few seconds (webserver + daemon; Ctrl-C stops both)"
	$(DG) dev -h 127.0.0.1 -p $(PORT) --log-level $(DEV_LOG_LEVEL)

test: setup system-packages $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/ruff check mlops_assets mlops_assets_tests benchmarks
	$(DG) check defs
	$(BIN)/pytest -q -n 2 --dist loadfile --durations=30

# The edit-test loop: the unit tier only (markers in pyproject.toml, docs/testing.md); its alert-rule tests run promtool.
FAST_TIER := not e2e and not dask and not browser and not slow
test-fast: setup system-packages
	$(BIN)/ruff check mlops_assets mlops_assets_tests benchmarks
	$(BIN)/pytest -q -m "$(FAST_TIER)"

# The champion behind MLflow's scoring protocol, following the alias; /docs, /metrics, /version.
serve: setup
	$(BIN)/python -m mlops_assets.serving.app $(if $(SERVE_PORT),--port $(SERVE_PORT)) \
	  $(if $(SERVE_POLL_SECONDS),--poll-seconds $(SERVE_POLL_SECONDS))

# The forecast explorer on http://127.0.0.1:$(EXPLORE_PORT): pick a series, see its forecast, ask questions.
explore: setup
	$(BIN)/python -m mlops_assets.explorer.app --port $(EXPLORE_PORT)

# A Prometheus on 127.0.0.1:9090 scraping `make serve` and evaluating its alert rules.
prometheus:
	prometheus --config.file=mlops_assets/monitoring/prometheus/prometheus.yml \
	  --storage.tsdb.path=$(MLOPS_DATA_DIR)/prometheus --web.listen-address=127.0.0.1:9090

# Evidently's UI on the workspace of monitoring/evidently_workspace: drift share and realized SMAPE over time.
monitor: setup
	$(BIN)/evidently ui --workspace $(MLOPS_DATA_DIR)/evidently --host 127.0.0.1 --port $(MONITOR_PORT)

# MLflow's GenAI job workers (not used here) and uvicorn's access log made about 350 lines a session.
mlflow-ui: setup
	@echo "MLflow UI on http://127.0.0.1:$(MLFLOW_PORT) in a few seconds (Ctrl-C stops it)"
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false PYTHONWARNINGS='ignore:starlette.middleware.wsgi is deprecated' \
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(MLOPS_DATA_DIR)/mlflow/mlflow.db -h 127.0.0.1 -p $(MLFLOW_PORT) \
	  --uvicorn-opts "--log-level warning"

bench: setup
	$(BIN)/python benchmarks/backtest_speed.py --sizes 1000,5000
	$(BIN)/python benchmarks/accuracy.py
	$(BIN)/python benchmarks/serving_latency.py
	$(BIN)/python benchmarks/automation_latency.py

lint: setup
	$(BIN)/ruff check mlops_assets mlops_assets_tests benchmarks

clean:
	rm -rf $(VENV) $(MLOPS_DATA_DIR)
