# The two commands a new user types: `make demo` and `make test`. Each builds .venv from nothing first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q
DEMO_OUT ?= out/demo
# test-compat: the oldest Python that pyproject.toml allows (scripts/lowest-requirements.py checks it is)
COMPAT_PYTHON ?= python3.11
COMPAT := .cache/compat
WHEEL_CHECK := .cache/wheel-check

.PHONY: demo demo-teacher test test-slow test-compat test-wheel venv constraints clean

venv: $(VENV)/.installed

# torch first, by itself: `torch==2.13.0` (CPU build) is served from this machine's disk,
# and installing it before the extras keeps pip from choosing a multi-GB CUDA build.
# Then the extras at the versions tested: pyproject.toml states ranges, constraints.txt the exact versions.
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install torch==2.13.0
	$(PIP) install -c constraints.txt -e '.[dev]'
	touch $@

# After a deliberate upgrade inside .venv (and `make test` passing on it): write its versions back as the constraints.
constraints: venv
	{ echo "# The toolchain's tested versions: make venv installs with -c constraints.txt. Written by make constraints."; \
	  $(BIN)/python -m pip freeze --all --exclude-editable --disable-pip-version-check | grep -v '^pip==' | sed 's/+cpu$$//'; \
	} > constraints.txt.new && mv constraints.txt.new constraints.txt

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

# The SDK's tests (tests/igr_edge) in a venv without torch, on the oldest Python and the lowest numpy, pillow and
# onnxruntime that pyproject.toml allows, installed from the registry. Their tiny bundles are exported with torch
# first (.venv; cached by `make test`, so usually nothing to do); the tests that need torch or diffusers skip.
test-compat: venv
	$(BIN)/python -m tests.tiny_bundles >/dev/null
	rm -rf $(COMPAT) && $(COMPAT_PYTHON) -m venv $(COMPAT)
	$(COMPAT)/bin/python scripts/lowest-requirements.py > $(COMPAT)/lowest.txt
	$(COMPAT)/bin/python -m pip --disable-pip-version-check -q install -r $(COMPAT)/lowest.txt
	$(COMPAT)/bin/python -m pip --disable-pip-version-check -q install -c constraints.txt pytest hypothesis setuptools
	$(COMPAT)/bin/python -m pip --disable-pip-version-check -q install --no-deps -e .
	$(COMPAT)/bin/igr-edge doctor
	$(COMPAT)/bin/python -m pytest -q -p no:cacheprovider -m "not slow" tests/igr_edge

# The wheel and sdist as users get them: built (the wheel from the sdist), the wheel installed into a clean venv
# without torch (numpy, pillow and onnxruntime resolved from the registry: the newest in range), a sample restored.
test-wheel: venv
	rm -rf $(WHEEL_CHECK) && mkdir -p $(WHEEL_CHECK)
	$(BIN)/python -m build --outdir $(WHEEL_CHECK)/dist . > $(WHEEL_CHECK)/build.log 2>&1 || { cat $(WHEEL_CHECK)/build.log; exit 1; }
	$(PYTHON) -m venv $(WHEEL_CHECK)/venv
	$(WHEEL_CHECK)/venv/bin/python -m pip --disable-pip-version-check -q install $(WHEEL_CHECK)/dist/igr_edge-*.whl
	$(WHEEL_CHECK)/venv/bin/python -m pip --disable-pip-version-check check
	cd $(WHEEL_CHECK) && venv/bin/igr-edge doctor && venv/bin/igr-edge restore -q $(CURDIR)/samples/persons/test-04.jpg -o out
	cd $(WHEEL_CHECK) && venv/bin/python $(CURDIR)/scripts/check-wheel.py dist out/test-04.png

clean:
	rm -rf $(VENV) out build dist *.egg-info .pytest_cache $(COMPAT) $(WHEEL_CHECK) bindings/.installed bindings/js/node_modules
