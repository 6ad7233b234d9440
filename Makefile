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

.PHONY: run test lint jars setup clean

setup: $(BIN)/.installed $(JARS_STAMP)

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[local,dev]'
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

lint: setup
	$(BIN)/ruff check lib jobs tests
	$(BIN)/ruff format --check lib jobs tests
	$(BIN)/mypy

test: setup lint
	$(BIN)/pytest -q

clean:
	rm -rf $(ROOT)/tables $(ROOT)/mlflow $(ROOT)/demo
