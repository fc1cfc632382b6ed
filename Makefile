# The two commands a newcomer needs:  `make demo`  and  `make test`.
# Both install what they need (Debian packages, then a virtualenv in .venv) on first use.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Debian packages the build and the tests use: swig + libpcsclite-dev build pyscard; socat makes
# the RS-485 pty pairs; pcscd + vsmartcard-vpcd give the card-reader tests a real PC/SC stack;
# the MQTT tests start their own mosquitto broker.
DEB_PACKAGES := swig libpcsclite-dev socat pcscd vsmartcard-vpcd mosquitto
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test install-smoke lint bench setup system-deps clean

demo: setup
	$(BIN)/edgegw demo

test: setup
	$(BIN)/pytest -q
	$(BIN)/ruff check edgegw tests
	$(BIN)/mypy
	$(MAKE) --no-print-directory install-smoke

# What users install: the wheel, with plain pip, in a fresh virtualenv (no dev extras), then
# version, meter profiles, config check and a daemon run to READY and a clean SIGTERM.
install-smoke: setup
	$(BIN)/python -m tests.install.smoke

lint: setup
	$(BIN)/ruff check edgegw tests
	$(BIN)/ruff format --check edgegw tests
	$(BIN)/mypy

setup: system-deps $(VENV)/.installed

system-deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
