# Two commands for a fresh machine with only Python and pip: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
OUT    ?= out

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench,spark]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/audit --store $(OUT)/demo.duckdb demo --out $(OUT)

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m bench.bench_compare
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.serve
	$(BIN)/python -m bench.bench_gaming
	$(BIN)/python -m bench.spark
	$(BIN)/python -m bench.bench_topics

clean:
	rm -rf $(OUT) .pytest_cache
