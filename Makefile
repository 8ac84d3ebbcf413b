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

# the SDK (no torch) restores the sample photos with the bundle shipped in the package
demo: venv
	$(BIN)/python -m igr_edge.demo --samples samples --out $(DEMO_OUT)

# the torch teacher on test-split persons, and the SynthGarment sample sheet
demo-teacher: venv
	$(BIN)/python -m igr.demo --out $(DEMO_OUT)

# pytest exits 5 when it collects nothing: that counts as a failure too.
test: venv
	@$(BIN)/python -m pytest -q -m "not slow"; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: no tests were collected" >&2; fi; exit $$status

test-slow: venv
	$(BIN)/python -m pytest -q -m slow

clean:
	rm -rf $(VENV) out build *.egg-info .pytest_cache
