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

.PHONY: install format lint test book stall-check smoke-book browser-test colab-test bench robustness timings record clean

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

## one formatter (ruff, 88 columns) for the package, tests, tools, benchmarks and chapters
format: $(STAMP)
	$(BIN)/ruff format .

## what CI checks of the code's form: ruff's formatting, and what the chapters show a reader
## (tools/reader_stats.py: no visible assert, no visible line wider than the code column,
## no helper defined in two chapters; and issue 29's course targets: no glue of text, no removed
## cell over 30 lines, removed code lines at most the visible ones)
lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/python tools/reader_stats.py --check --course

## the HTML book, every chapter executed on the default budget; open _build/html/index.html
## The chapters are first executed in parallel (one kernel per core) into the build's cache;
## jupyter-book then renders them, re-running (and reporting) any chapter that failed.
book: $(STAMP)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} VMONF_BUDGET=$${VMONF_BUDGET:-default} $(BIN)/python tools/execute_chapters.py
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} VMONF_BUDGET=$${VMONF_BUDGET:-default} $(BIN)/jupyter-book build . $(BOOK_FLAGS)
	@echo "Open _build/html/index.html"

## the chapters executed as `make book` executes them, 3 times in a row on the default budget and
## 20 times on the smoke budget (no cache); fails when a cell ever takes more than 60 s beyond its
## usual time (its median over the rounds) or a chapter fails. Reports: _build/stall-reports/
STALL_ROUNDS ?= 3
SMOKE_ROUNDS ?= 20
stall-check: $(STAMP)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} VMONF_BUDGET=default $(BIN)/python tools/stall_check.py --rounds $(STALL_ROUNDS)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} VMONF_BUDGET=smoke $(BIN)/python tools/stall_check.py --rounds $(SMOKE_ROUNDS)

## the browser test of the built book (run `make book` first; Chromium: sudo tools/install_browser.sh)
## Opens every page of _build/html in headless Chromium, offline; screenshots in artifacts/screenshots/.
## Here a missing book or browser fails instead of skipping.
browser-test: $(STAMP)
	VMONF_REQUIRE_BROWSER=1 $(BIN)/python -m pytest tests/test_browser.py -m browser -q -p no:cacheprovider

## Colab as a student meets it: every chapter on the smoke budget, its own install cell pointed at a
## wheel of this checkout, in a Python 3.11 env with Colab's versions (tools/colab/constraints.txt;
## .venv-colab, made on first use). Fails when a chapter fails or the install replaces a package.
colab-test: $(STAMP)
	VMONF_COLAB_TEST=1 OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m pytest tests/test_colab.py -m colab -q -s -p no:cacheprovider

## speed.py, then the image recipe's table (bench/images.py: vm.recipes.cluster_images with its
## defaults on MNIST 0-4 and all ten digits, seeds 0-4, beside k-means and PCA + GMM; ~25 min)
bench: $(STAMP)
	$(BIN)/python bench/speed.py
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(BIN)/python bench/images.py

robustness: $(STAMP)
	$(BIN)/python bench/robustness.py

## the paper's MNIST model at the full budget (100 epochs; minutes on a GPU, hours on a CPU), written to
## book/recorded/ with its provenance; chapter 8 shows it beside the build's shortened run
## the paper's MNIST run at its length, per variant of PAPER_MNIST_VARIANTS, three seeds each
## (book/recorded/mnist_VARIANT_seedS.json): minutes on a GPU, about an hour per seed on 2 cores
RECORD_VARIANTS ?= paper paper_floor raw
record: $(STAMP)
	for v in $(RECORD_VARIANTS); do $(BIN)/python tools/record.py --variant $$v $(RECORD_FLAGS) || exit 1; done

timings: $(STAMP)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python bench/chapter_times.py

clean:
	rm -rf _build .pytest_cache

## MixtureOfFlows' defaults over 10 random states on the book's data sets, beside GaussianMixture,
## and with 1 or 4 labels per class beside label propagation (its few-label rows, issue 28)
estimator-bench: $(STAMP)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python bench/estimator.py
