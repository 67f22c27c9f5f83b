# One venv, created or reused by every target.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export OPENBLAS_NUM_THREADS := 1
export MKL_NUM_THREADS := 1

.PHONY: setup demo test lint bench mlflow-ui clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip wheel setuptools
	$(BIN)/pip install -q -e '.[all,dev]' --config-settings editable_mode=compat
	# compile the serving kernels into numba's cache now, so the first `recsys serve` loads them
	$(BIN)/python -m serving.jit
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/recsys demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check features recsys serving bench tests
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/train_speed.py
	$(BIN)/python bench/quality.py --ratings ../shared/data/ml-latest-small/ratings.csv
	$(BIN)/python bench/serve.py

mlflow-ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri "$${MLFLOW_TRACKING_URI:-sqlite:///mlruns/mlflow.db}" --default-artifact-root mlruns/artifacts

clean:
	rm -rf demo-data bench/out
