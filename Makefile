# The README's two commands: `make run` and `make test`. Both set themselves up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run test test-fast fuzz drill setup model lint bench bench-http bench-peers bench-traffic bench-datasets bench-scale bench-upload smoke screenshots clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

setup: $(STAMP)

model/eclo/metadata.json: | $(STAMP)
	$(PY) -m backend.ml.train eclo --out model/eclo

model/congestion/metadata.json: | $(STAMP)
	$(PY) -m backend.ml.train congestion --out model/congestion

model: model/eclo/metadata.json model/congestion/metadata.json

run: setup model
	$(PY) -m backend.dev.launcher

# Tests run on TEST_WORKERS pytest-xdist workers, each with its own Redis database, PostgreSQL databases and stacks;
# one OpenMP thread each, so that the workers' LightGBM trainings do not crowd each other's cores.
TEST_WORKERS ?= 2
PYTEST := OMP_NUM_THREADS=1 $(PY) -m pytest -n $(TEST_WORKERS)

# Every tier: unit, app (the app in-process), stack (real processes) and drill (outages, kills, fuzzing).
# Then the tests of what the file storage holds (datasets, their chunks, explore tables, model versions) again with
# the files in an object store (moto's S3 server: the stand-in).
STORE_TESTS := tests/api/routes/test_datasets.py tests/tasks/test_datasets.py tests/api/routes/test_explore.py \
	tests/api/routes/test_model_lifecycle.py tests/tasks/test_training.py
test: setup
	$(PY) -m ruff check .
	$(PYTEST)
	TEST_STORAGE=s3 $(PYTEST) $(STORE_TESTS)

# The fast loop: unit and app tests only (no server or worker process started).
test-fast: setup
	$(PY) -m ruff check .
	$(PYTEST) -m "unit or app"

# The schemathesis run alone (it is part of `make test` too).
fuzz: setup
	$(PY) -m pytest tests/reliability/test_fuzz.py

# The multi-host drill alone (root, network namespaces; it is part of `make test` too): prints what it measured.
drill: setup model
	$(PY) -m pytest -s -p no:randomly -rs tests/reliability/test_multi_host_drill.py

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: setup model
	$(PY) bench/bench_predict.py
	$(PY) bench/bench_congestion.py

bench-http: setup model
	$(PY) bench/bench_http.py

# This API against MLServer serving the same model (MLServer in bench/peers/.venv, made on first use).
bench-peers: setup model
	$(PY) bench/peers/run.py

bench-traffic: setup model
	$(PY) bench/bench_traffic.py

bench-datasets: setup model
	$(PY) bench/bench_datasets.py

# Issue 37's scale benchmark: up to 10,000 sensors x 30 days and 10 M records in PostgreSQL (1-2 h, ~12 GB of disk).
# BENCH_SCALE_ARGS=--quick tries it out in minutes.
bench-scale: setup model
	$(PY) bench/bench_scale.py $(BENCH_SCALE_ARGS)

bench-upload: setup model
	$(PY) bench/bench_upload_beside.py

smoke:
	./test_mvp.sh

# Shoots the stack `make run` started (found from the same settings: API_PORT, STREAMLIT_PORT, DATA_DIR's user key)
# into screenshots/; needs Chromium (apt-get install chromium fonts-noto-cjk).
screenshots: setup
	$(PY) -c "import playwright" 2>/dev/null || $(PY) -m pip install -q -e '.[screenshots]'
	$(PY) scripts/screenshots.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
