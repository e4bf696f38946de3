# ibmvirt: the contract commands are `make demo`, `make test` and `make cloud`.
# Both create .venv from constraints.txt on first use (only python3 needed).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
DEPS   := $(VENV)/.deps-installed
STAMP  := $(VENV)/.ibmvirt-installed
SOURCES := $(shell find ibmvirt nova -type f \( -name '*.py' -o -name '*.yaml' \) 2>/dev/null)

# Nova 34 services run in native threads; so do our tests.
export OS_NOVA_DISABLE_EVENTLET_PATCHING := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: cloud cloud-stop cloud-test demo test lint format unit emulators guest-tools-test nova-tests neutron-tests \
        bench sample-config guest-tools constraints clean shellcheck genisoimage

$(PY):
	$(PYTHON) -m venv $(VENV)

$(DEPS): $(PY) constraints.txt pyproject.toml
	$(PIP) install -c constraints.txt setuptools
	$(PIP) install -c constraints.txt --no-build-isolation '.[test]'
	touch $@

# A normal (non-editable) install, as an operator would have it: Nova finds the
# shim in site-packages/nova/virt/ibmvirt. Tests import ibmvirt from the tree.
$(STAMP): $(DEPS) $(SOURCES)
	$(PIP) install --no-deps --no-build-isolation --force-reinstall .
	rm -rf build
	touch $@

demo: $(STAMP) genisoimage
	$(PY) -m ibmvirt.cmd.sandbox demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Debian's shellcheck, for the guest tools' lint test.
shellcheck:
	@command -v shellcheck >/dev/null || { \
	  echo "installing Debian's shellcheck"; \
	  (apt-get update -qq && apt-get install -y -qq shellcheck) >/dev/null; }

# Debian's genisoimage: Nova builds config drives with it (mkisofs_cmd), as on
# a real nova-compute host.
genisoimage:
	@command -v genisoimage >/dev/null || { \
	  echo "installing Debian's genisoimage"; \
	  (apt-get update -qq && apt-get install -y -qq genisoimage) >/dev/null; }

# Each suite is its own pytest process: Nova's and Neutron's harnesses cannot
# share one. Every suite runs; the target fails if any failed.
SUITES := tests/unit tests/emulators tests/guest_tools tests/nova
ifneq ($(wildcard tests/neutron/test_*.py tests/neutron/*/test_*.py),)
SUITES += tests/neutron
endif
ifneq ($(wildcard tests/telemetry/test_*.py),)
SUITES += tests/telemetry
endif
PYTEST_ARGS ?=

test: $(STAMP) shellcheck genisoimage
	@failed=""; \
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . || failed="$$failed lint"; \
	for suite in $(SUITES); do \
	  echo "=== $$suite"; \
	  extra=""; case $$suite in tests/nova|tests/neutron) extra="-n 2";; esac; \
	  $(PY) -m pytest -q $$extra $(PYTEST_ARGS) $$suite || failed="$$failed $$suite"; \
	done; \
	if [ -n "$$failed" ]; then echo "FAILED:$$failed"; exit 1; fi; \
	echo "all suites passed: lint $(SUITES)"

unit emulators nova-tests neutron-tests: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS) tests/$(patsubst %-tests,%,$@)

bench: $(STAMP) genisoimage
	$(PY) -m bench.run

# Regenerate etc/ sample configs (a unit test fails when they are stale).
sample-config: $(STAMP)
	for gen in etc/*-config-generator.conf; do \
	  $(PY) -m oslo_config.generator --config-file $$gen || exit 1; \
	done

guest-tools:
	bash guest-tools/dpm/build-tarball.sh dist

# Re-pin every transitive dependency from a fresh venv.
constraints:
	rm -rf .venv-pin && $(PYTHON) -m venv .venv-pin
	.venv-pin/bin/pip install -q 'setuptools>=68' && .venv-pin/bin/pip install -q --no-build-isolation '.[test,cloud]'
	.venv-pin/bin/pip freeze --exclude-editable | grep -v '^ibmvirt' > constraints.new && rm -rf .venv-pin
	@echo "review constraints.new and move it to constraints.txt"

# The real multi-process OpenStack on the emulators (README "The commands"). The
# OpenStack services' packages are the extra [cloud], installed on first use.
CLOUD_DIR ?= $(CURDIR)/.cloud
CLOUD_STAMP := $(VENV)/.cloud-installed

$(CLOUD_STAMP): $(STAMP) constraints.txt pyproject.toml
	$(PIP) install -c constraints.txt --no-build-isolation '.[cloud]'
	$(PIP) install --no-deps --no-build-isolation --force-reinstall .
	rm -rf build
	touch $@

cloud: $(CLOUD_STAMP)
	$(VENV)/bin/ibmvirt-cloud up --dir $(CLOUD_DIR)

cloud-stop:
	@test -x $(VENV)/bin/ibmvirt-cloud || { echo "no cloud here"; exit 0; }; \
	$(VENV)/bin/ibmvirt-cloud stop --dir $(CLOUD_DIR)

cloud-test: cloud
	$(VENV)/bin/ibmvirt-cloud test --dir $(CLOUD_DIR)

clean:
	rm -rf $(VENV) build dist *.egg-info
