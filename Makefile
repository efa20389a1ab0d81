# Two set-up commands for a fresh machine: `make demo` and `make test`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
# torch + torchvision pinned to the builds available as local wheels (CUDA builds that also run on CPU).
TORCH   ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install demo test bench clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

# The main job on the built-in sample images: a real Ray Tune search (HPCM_Tiny warm-started from
# the shipped trainable/pretrained checkpoint, CPU budget), the held-out test evaluation with real
# bitstreams, then the BD-rate report (no published anchor: the test split is not Kodak).
DEMO_STORAGE ?= ray_results
demo: install
	$(BIN)/python -m search.run --space phase2_delta --preset cpu-smoke --storage-path $(DEMO_STORAGE) --name demo --resume
	$(BIN)/python -m analysis.evaluate $(DEMO_STORAGE)/demo
	$(BIN)/python -m analysis.report $(DEMO_STORAGE)/demo

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) .pytest_cache
