# icl-arena: `make demo` and `make test` set everything up on a fresh machine, then run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | cksum | cut -d' ' -f1)
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test lint browser clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# CPU torch first where there is no GPU: a bare `torch` requirement would pull a multi-GB CUDA build.
	if ! command -v nvidia-smi >/dev/null 2>&1 && ! $(BIN)/python -c "import torch" 2>/dev/null; then \
		$(BIN)/python -m pip install -q torch==2.13.0; fi
	$(BIN)/python -m pip install -q -e ".[train,textarena,dev,ray]"
	rm -f $(VENV)/.installed-*
	touch $@

# Headless Chromium for the leaderboard page test (Debian's package); skipped where apt is unavailable.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
		( command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
		  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ) || \
		echo "chromium could not be installed; the page screenshot test will say so"

demo: setup
	# The main job: the tiny embedded model learns the multi-episode bandit on CPU (imitation, then ORBIT's GRPO;
	# about 12 minutes on 2 cores) and ends with the held-out per-episode table and where plots and checkpoints are.
	$(BIN)/python -m trainers.orbit

test: setup browser
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check envs agents trainers kernels leaderboard tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache outputs
