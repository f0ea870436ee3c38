# make demo  - fresh clone -> .venv, install, train the digits CNN, evaluate, compress and export it (runs/demo/)
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
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/netwright train examples/digits_cnn.yaml --name demo --overwrite
	$(BIN)/netwright evaluate runs/demo
	$(BIN)/netwright explain runs/demo --samples 4
	$(BIN)/netwright compress runs/demo --quantize int8 --prune 0.5 --quiet
	$(BIN)/netwright export runs/demo
	$(BIN)/netwright train examples/loans_fairness.yaml --name demo-fairness --overwrite --quiet
	$(BIN)/netwright audit runs/demo-fairness
	$(BIN)/netwright mitigate runs/demo-fairness --quiet

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/overhead.py

clean:
	rm -rf $(VENV) runs .pytest_cache
