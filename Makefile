# The two commands a new user types: `make demo` and `make test`. Each builds .venv from nothing first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q
DEMO_OUT ?= out/demo

.PHONY: demo demo-teacher test test-slow venv clean

venv: $(VENV)/.installed

# torch first, by itself: `torch==2.13.0` (CPU build) is served from this machine's disk,
# and installing it before the extras keeps pip from choosing a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[dev]'
	touch $@

# The bindings' test toolchains: Debian's chromium (the JS browser test), kotlinc + JUnit 4 + Android's org.json
# (the Kotlin noise and bundle tests), and the JS package's npm dependencies (onnxruntime-node's postinstall is
# skipped: its CPU binaries ship in the package). apt needs root; without it those tests skip and say why.
# The stamp depends on this Makefile too, so a checkout set up before a tool was added here gets it.
bindings/.installed: bindings/js/package-lock.json Makefile
	@missing=""; test -x /usr/bin/chromium || missing="$$missing chromium"; \
	command -v kotlinc >/dev/null || missing="$$missing kotlin"; \
	test -f /usr/share/java/junit4.jar || missing="$$missing junit4"; \
	test -f /usr/share/java/com.android.json.jar || missing="$$missing libandroid-json-java"; \
	if [ -n "$$missing" ]; then \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; } \
		|| echo "could not install$$missing: the tests that need them will skip"; fi
	@if command -v npm >/dev/null; then cd bindings/js && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error; \
	else echo "no npm: the JavaScript binding's tests will skip"; fi
	touch $@

# the SDK (no torch) restores the sample photos with the bundle shipped in the package
demo: venv
	$(BIN)/python -m igr_edge.demo --samples samples --out $(DEMO_OUT)

# the torch teacher on test-split persons, and the SynthGarment sample sheet
demo-teacher: venv
	$(BIN)/python -m igr.demo --out $(DEMO_OUT)

# pytest exits 5 when it collects nothing: that counts as a failure too.
test: venv bindings/.installed
	@$(BIN)/python -m pytest -q -m "not slow"; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: no tests were collected" >&2; fi; exit $$status

test-slow: venv
	$(BIN)/python -m pytest -q -m slow

clean:
	rm -rf $(VENV) out build *.egg-info .pytest_cache bindings/.installed bindings/js/node_modules
