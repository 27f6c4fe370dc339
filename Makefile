# The one entry point for people and CI alike.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# MCP peers nobody here wrote, for tests/mcp: an `mcp<2` client in a venv of its own (the
# older protocol era) and MCP Inspector's CLI from the npm registry. A stamp per version,
# so a changed pin reinstalls and an unchanged one costs nothing.
PEERS := $(VENV)/peers
MCP1_SPEC := mcp>=1.20,<2
MCP1_STAMP := $(PEERS)/mcp1/.installed-1.20-2
INSPECTOR_VERSION := 2.12.0
INSPECTOR_STAMP := $(PEERS)/inspector/.installed-$(INSPECTOR_VERSION)
# The console's browser suite: Debian's chromium, driven by playwright (the dev extra).
CHROMIUM_STAMP := $(VENV)/.installed-chromium
# The run store's tests on PostgreSQL: Debian's server binaries (tests/pg.py starts a
# throwaway cluster from them; no system service is used).
POSTGRES_STAMP := $(VENV)/.installed-postgresql

.PHONY: install test stress check demo console bench proto clean

install: $(STAMP) $(MCP1_STAMP) $(INSPECTOR_STAMP) $(CHROMIUM_STAMP) $(POSTGRES_STAMP)
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

$(MCP1_STAMP): | $(STAMP)
	rm -rf $(PEERS)/mcp1
	$(PYTHON) -m venv $(PEERS)/mcp1
	$(PEERS)/mcp1/bin/pip install --quiet --retries 2 --timeout 20 '$(MCP1_SPEC)' || \
		{ echo "make install: could not install '$(MCP1_SPEC)' from PyPI" >&2; exit 1; }
	touch $@

$(INSPECTOR_STAMP): | $(STAMP)
	@# Node.js and npm (Debian packages), where the machine lacks them.
	@command -v npm >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		apt-get install -y -qq nodejs npm; } || \
		{ echo "make install: MCP Inspector needs node and npm" >&2; exit 1; }
	rm -rf $(PEERS)/inspector
	npm install --prefix $(PEERS)/inspector --no-audit --no-fund --loglevel=error \
		@modelcontextprotocol/inspector@$(INSPECTOR_VERSION) || \
		{ echo "make install: could not install MCP Inspector from the npm registry" >&2; exit 1; }
	touch $@

$(CHROMIUM_STAMP): | $(STAMP)
	@# Debian's package, not `playwright install`: a browser download cannot work here.
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		apt-get install -y -qq chromium; } || \
		{ echo "make install: the console's browser suite needs Debian's chromium" >&2; exit 1; }
	touch $@

$(POSTGRES_STAMP): | $(STAMP)
	@ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && \
		apt-get update -qq && apt-get install -y -qq postgresql; } || \
		{ echo "make install: the store's tests need Debian's postgresql" >&2; exit 1; }
	touch $@

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

# The same example with the console on: prints its sign-in URL and serves until Ctrl-C.
CONSOLE_PORT ?= 8377
console: install
	$(BIN)/python scripts/console_demo.py --port $(CONSOLE_PORT)

# Every figure is a ratio against a reference measured in the same run (see benchmarks/).
bench: install
	$(BIN)/python benchmarks/bench.py
	$(BIN)/python benchmarks/guard_bench.py
	$(BIN)/python benchmarks/sandbox_bench.py
	$(BIN)/python benchmarks/load_bench.py
	$(BIN)/python benchmarks/listener_bench.py
	$(BIN)/python benchmarks/dev_bench.py
	$(BIN)/python benchmarks/replay_bench.py
	$(BIN)/python benchmarks/escalate_bench.py
	$(BIN)/python benchmarks/mcp_bench.py
	$(BIN)/python benchmarks/console_bench.py
	$(BIN)/python benchmarks/console_live_bench.py
	$(BIN)/python benchmarks/cluster_bench.py

proto: install
	$(BIN)/python scripts/gen_proto.py

clean:
	rm -rf $(VENV) .tandem .pytest_cache .mypy_cache .ruff_cache
