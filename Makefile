# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

# Prefect's no-server mode starts a temporary server whose first start here can exceed its default
# 20 s timeout; analytics are off because these machines reach no network but the package registries.
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 90
export DO_NOT_TRACK ?= 1

.PHONY: install data demo test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	SAM2_BUILD_CUDA=0 $(BIN)/python -m pip install --quiet --no-build-isolation --no-deps -c constraints.txt sam2==1.1.0
	touch $(STAMP)

data: $(STAMP)
	$(BIN)/samatlas fetch sample-radiomics sample-mni152

demo: data
	$(BIN)/samatlas demo

# one pytest process per core (pytest-xdist), each test file on one of them: most flow tests wait on
# subprocesses, servers and kills, so two at once take less than twice as long on 2 cores
test: data
	$(BIN)/python -m pytest -n auto --dist loadfile

# evaluate's cost against the bare encoder on one sample case and on 100 template slices, and the
# non-model part's speed with a 1 ms stand-in model (bench/pipeline.py) (minutes), the encoder against
# the machine's matmul and its faster variants (a minute; torch.compile's cold minutes skipped), the encoder in a
# Dask worker against this process (a minute), then the bounded embedding
# cache's peak memory against holding every embedding (seconds), then ingest's MB/s against a bare
# SimpleITK read, its 2-worker speed-up and its peak memory on a 600-slice CT (minutes, synthetic
# volumes in a temporary folder); each prints one JSON line last
bench: data
	$(BIN)/python bench/evaluate.py
	$(BIN)/python bench/encoder_speed.py --no-compile
	$(BIN)/python bench/worker_speed.py
	$(BIN)/python bench/volume_memory.py
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) samatlas-data
