# The README's two commands: `make run` and `make test`. Both set themselves up.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
ROOT := .smb-fanout
JARS_STAMP := $(ROOT)/jars/.complete
export MLFLOW_DISABLE_TELEMETRY := true
export SPARK_LOCAL_IP := 127.0.0.1
export PYSPARK_PYTHON := $(CURDIR)/$(BIN)/python
export TZ := UTC

.PHONY: run test lint jars setup clean chromium bench evaluate

setup: $(BIN)/.installed $(JARS_STAMP) chromium

# The report test renders the HTML report in headless Chromium (Debian package
# chromium). Installing it needs root; without root the test is skipped locally.
chromium:
	@if ! command -v chromium >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null; \
		else \
			echo "chromium not found: install the Debian package chromium to run the report's browser test"; \
		fi; \
	fi

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[local,dev,bench]'
	touch $@

# Maven resolves the Delta jars from Maven Central once and copies them into
# the project folder; later runs and the tests start without the network.
$(JARS_STAMP): jvm/pom.xml
	mkdir -p $(ROOT)/jars
	mvn --batch-mode --quiet -f jvm/pom.xml dependency:copy-dependencies \
		-DincludeScope=runtime -DincludeGroupIds=io.delta,io.unitycatalog \
		-DoutputDirectory=$(CURDIR)/$(ROOT)/jars
	touch $@

jars: $(JARS_STAMP)

# A real red-team trace shipped in the repository (CC BY-SA 4.0, see its SOURCE.md).
WRCCDC_TRACE := tests/fixtures/wrccdc-2018

run: setup
	$(BIN)/smb-fanout demo
	@echo "Replaying the real WRCCDC 2018 Zeek SMB trace over generated history"
	$(BIN)/smb-fanout --set storage.local_root=.smb-fanout/replay-run replay --trace "$(WRCCDC_TRACE)" --format zeek
	$(BIN)/smb-fanout report

lint: setup
	$(BIN)/ruff check lib jobs tests benchmarks
	$(BIN)/ruff format --check lib jobs tests benchmarks
	$(BIN)/mypy

test: setup lint
	$(BIN)/pytest -q --numprocesses 2 --dist loadfile --durations=15

# Generates fleets of three sizes and three history lengths and writes
# docs/benchmarks.md. The default sizes (1,200, 2,400 and 11,200 workstations,
# up to 20 million events) took 47 minutes on 2 cores. BENCH_ARGS passes options
# to benchmarks/bench.py; BENCH_ARGS="--sizes 150,300,600" takes about 10 minutes.
bench: setup
	$(BIN)/python -m benchmarks.bench $(BENCH_ARGS)

# Runs the labelled scenario library (500 workstations, 45 days) and writes
# docs/evaluation.md; it took 9 to 13 minutes on 2 cores. EVALUATE_ARGS passes
# options, for example EVALUATE_ARGS="--repeats 2".
evaluate: setup
	$(BIN)/smb-fanout --set storage.local_root=.smb-fanout/evaluation evaluate --output docs/evaluation.md $(EVALUATE_ARGS)

clean:
	rm -rf $(ROOT)/tables $(ROOT)/mlflow $(ROOT)/demo
