# The one entry point for people and CI alike.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test stress check demo bench proto clean

install: $(STAMP)
	@# Byte-compile the editable sources, as a wheel install would: a CLI start then reads
	@# bytecode instead of compiling every module, even where PYTHONDONTWRITEBYTECODE is set.
	@$(BIN)/python -m compileall -q -j0 runtime sdk >/dev/null
	@# The namespace sandbox: bubblewrap, and libseccomp for its filter (Debian packages).
	@command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		apt-get install -y -qq bubblewrap libseccomp2; } || echo "install bubblewrap for the namespace sandbox"

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Two workers: most tests wait on daemons and subprocesses. Each module stays on one worker
# (--dist loadfile), so a module's shared daemon starts once.
test: install
	$(BIN)/pytest -q -n 2 --dist loadfile

# The fault-injection loops at full length (the quick suite runs them short).
stress: install
	TANDEM_STRESS_CRASHES=200 TANDEM_STRESS_BURST=1000 $(BIN)/pytest -q -s -m stress

check: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python scripts/gen_proto.py --check

# The pr_merged example end to end, on local stand-ins for Slack, GitHub and the model.
demo: install
	$(BIN)/python scripts/demo.py

# Every figure is a ratio against a reference measured in the same run (see benchmarks/).
bench: install
	$(BIN)/python benchmarks/bench.py
	$(BIN)/python benchmarks/sandbox_bench.py
	$(BIN)/python benchmarks/load_bench.py
	$(BIN)/python benchmarks/listener_bench.py
	$(BIN)/python benchmarks/dev_bench.py
	$(BIN)/python benchmarks/replay_bench.py

proto: install
	$(BIN)/python scripts/gen_proto.py

clean:
	rm -rf $(VENV) .tandem .pytest_cache .mypy_cache .ruff_cache
