# The two commands a newcomer runs: `make demo` and `make test`. Both set everything up.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install --disable-pip-version-check -q -c constraints.txt
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench claims clean gallery browser

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(PIP) torch==2.13.0
	$(PIP) -e ".[all,test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/lrkit demo --out runs/demo
	$(BIN)/python docs/update_demo.py runs/demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks docs
	$(BIN)/ruff format --check src tests benchmarks docs

typecheck: $(STAMP)
	$(BIN)/mypy

# The report test renders HTML in Debian's headless Chromium; install it when it is missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the report rendering test"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "could not install chromium: the rendering test will be skipped"; }

test: $(STAMP) lint typecheck browser
	$(BIN)/python -m pytest -n 2 --dist loadgroup

bench: $(STAMP)
	$(PIP) -e ".[all,test,bench]"
	$(BIN)/python benchmarks/run_all.py

# The papers' claims table (README.md and BENCHMARKS.md); reads time_to_accuracy.py's cache.
claims: $(STAMP)
	$(BIN)/python benchmarks/claims.py

gallery: $(STAMP)
	$(BIN)/python docs/make_gallery.py

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
