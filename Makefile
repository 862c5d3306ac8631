# Two commands for a fresh machine: `make book` builds the HTML book, `make test` runs every test.
# Both create ./.venv and install what they need on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch first, pinned to a CPU build that installs from local disk on the course machines;
# override with `make TORCH=torch test` (any torch>=2.1 works).
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed
BOOK_FLAGS ?= -W -n --keep-going

.PHONY: install test book smoke-book browser-test bench robustness timings clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

## every test: unit tests, doctests, and nbval over every chapter on the smoke budget
## One torch thread per process (2 threads were 10-16x slower on these tiny models), one pytest
## worker per core (pytest-xdist); --dist loadscope keeps each notebook's cells in one kernel, in order.
JOBS ?= auto
test: $(STAMP)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} VMONF_BUDGET=smoke MPLBACKEND=Agg $(BIN)/python -m pytest tests vmonf_mini book \
		--doctest-modules --nbval-lax --nbval-current-env -p no:cacheprovider -q -n $(JOBS) --dist loadscope

## the HTML book, every chapter executed on the default budget; open _build/html/index.html
## The chapters are first executed in parallel (one kernel per core) into the build's cache;
## jupyter-book then renders them, re-running (and reporting) any chapter that failed.
book: $(STAMP)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} VMONF_BUDGET=$${VMONF_BUDGET:-default} $(BIN)/python tools/execute_chapters.py
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} VMONF_BUDGET=$${VMONF_BUDGET:-default} $(BIN)/jupyter-book build . $(BOOK_FLAGS)
	@echo "Open _build/html/index.html"

## the browser test of the built book (run `make book` first; Chromium: sudo tools/install_browser.sh)
## Opens every page of _build/html in headless Chromium, offline; screenshots in artifacts/screenshots/.
## Here a missing book or browser fails instead of skipping.
browser-test: $(STAMP)
	VMONF_REQUIRE_BROWSER=1 $(BIN)/python -m pytest tests/test_browser.py -m browser -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python bench/speed.py

robustness: $(STAMP)
	$(BIN)/python bench/robustness.py

timings: $(STAMP)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python bench/chapter_times.py

clean:
	rm -rf _build .pytest_cache

## MixtureOfFlows' defaults over 10 random states on the book's data sets, beside GaussianMixture
estimator-bench: $(STAMP)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python bench/estimator.py
