# The two commands of the README: `make demo` and `make test`.
# Everything they need is installed here, so a machine with nothing but Python, Node.js
# and apt gets a working setup (CI runs `make test` on such a machine).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
VENDOR := static/vendor/aliyun-oss-sdk.min.js
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all demo test lint format bench wrk chromium postgresql redis emulator clean

all: $(BIN)/ossgate $(VENDOR)

$(BIN)/ossgate: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,dev]'
	touch $@

node_modules/ali-oss/dist/aliyun-oss-sdk.min.js: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

$(VENDOR): node_modules/ali-oss/dist/aliyun-oss-sdk.min.js
	mkdir -p static/vendor
	cp node_modules/ali-oss/dist/aliyun-oss-sdk.min.js $@

# Debian's Chromium for the browser tests (Playwright drives it; no browser download).
chromium:
	@command -v $(CHROMIUM) >/dev/null 2>&1 || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }

# Debian's PostgreSQL server for the upload-records tests (they start their own cluster).
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql; }

# Debian's Redis server for the several-instance tests (shared rate limits).
redis:
	@command -v redis-server >/dev/null 2>&1 || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq redis-server; }

demo: all
	$(BIN)/ossgate demo

emulator: all
	$(BIN)/ossgate emulator

test: all chromium postgresql redis
	$(BIN)/pytest

lint: all
	$(BIN)/ruff check server tests $(wildcard bench)
	$(BIN)/ruff format --check server tests $(wildcard bench)
	node_modules/.bin/tsc -p tsconfig.json

format: all
	$(BIN)/ruff format server tests $(wildcard bench)

# wrk (Debian) generates the load; benchmarks talk only to 127.0.0.1.
wrk:
	@command -v wrk >/dev/null 2>&1 || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq wrk; }

bench: all wrk
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) node_modules static/vendor *.egg-info
