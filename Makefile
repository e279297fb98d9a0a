# Two commands for a newcomer: `make run` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_VERSION := 2.13.0

.PHONY: run test lint bench clean install

install: $(STAMP)

# torch goes first: the CPU build where no NVIDIA GPU is present (a bare `torch`
# would pull gigabytes of CUDA libraries), the default CUDA build otherwise.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	if command -v nvidia-smi >/dev/null 2>&1; then \
	  $(BIN)/python -m pip install -q "torch==$(TORCH_VERSION)"; \
	else \
	  $(BIN)/python -m pip install -q --only-binary=:all: "torch==$(TORCH_VERSION)+cpu" 2>/dev/null || \
	  $(BIN)/python -m pip install -q "torch==$(TORCH_VERSION)+cpu" --index-url https://download.pytorch.org/whl/cpu; \
	fi
	$(BIN)/python -m pip install -q -e ".[dev,ray,implicit]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/recpoison run quick

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
