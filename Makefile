# The two commands of the README: `make demo` and `make test`.
# Everything they need is installed here, so a machine with nothing but Python, Node.js
# and apt gets a working setup (CI runs `make test` on such a machine).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
VENDOR := static/vendor/aliyun-oss-sdk.min.js
# Uppy's bundle (window.Uppy) and styles for the page at /uppy (README: "Uppy").
UPPY_VENDOR := static/vendor/uppy.min.js static/vendor/uppy.min.mjs static/vendor/uppy.min.css
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all demo test lint format bench wrk chromium postgresql redis emulator clean js-package

all: $(BIN)/ossgate $(VENDOR) $(UPPY_VENDOR)

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

# npm ci (the rule above) installs uppy together with ali-oss: one package-lock.json.
$(UPPY_VENDOR): node_modules/ali-oss/dist/aliyun-oss-sdk.min.js
	mkdir -p static/vendor
	cp node_modules/uppy/dist/$(@F) $@

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

# The demo takes the OSSGATE_* settings of the environment and ./.env (limits, content types,
# destinations, …) but owns the emulator's; OSSGATE_DEMO_PORT=5001 make demo moves the app.
demo: all
	$(BIN)/ossgate demo

emulator: all
	$(BIN)/ossgate emulator

test: all chromium postgresql redis
	$(BIN)/pytest

lint: all
	$(BIN)/ruff check server tests $(wildcard bench)
	$(BIN)/ruff format --check server tests $(wildcard bench)
	$(BIN)/mypy
	node_modules/.bin/tsc -p tsconfig.json

format: all
	$(BIN)/ruff format server tests $(wildcard bench)

# wrk (Debian) generates the load; benchmarks talk only to 127.0.0.1.
wrk:
	@command -v wrk >/dev/null 2>&1 || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq wrk; }

bench: all wrk
	@$(BIN)/python -m bench

# The upload module for other frontends, two ways (README: "Use it from your own frontend"):
# - the npm package $(JS_DIST)/npm/ossgate-upload-VERSION.tgz: the ES modules as they are,
#   their type declarations generated from the JSDoc, ali-oss as a peer dependency;
# - $(JS_DIST)/ossgate-upload.js, the same module as one self-contained file (esbuild).
# Both need `baseUrl` (ossgate's URL). JS_DIST=DIR builds elsewhere (the tests use a tmp dir).
# The declarations name ali-oss's types (namespace AliOss, types/ali-oss.d.ts), which tsc does
# not link from the entry's declarations: printf adds the reference.
JS_DIST ?= dist
JS_VERSION := $(shell sed -n 's/^version *= *//p' setup.cfg)
JS_STAGE := $(JS_DIST)/npm/package

js-package: node_modules/ali-oss/dist/aliyun-oss-sdk.min.js
	rm -rf $(JS_STAGE) $(JS_DIST)/npm/ossgate-upload-*.tgz
	mkdir -p $(JS_STAGE)/upload $(JS_STAGE)/types
	cp static/ossgate-upload.js $(JS_STAGE)/
	cp static/upload/*.js $(JS_STAGE)/upload/
	cp static/types/ali-oss.d.ts $(JS_STAGE)/types/
	node_modules/.bin/tsc -p packaging/npm/tsconfig.json --outDir $(JS_STAGE)
	printf '/// <reference path="./types/ali-oss.d.ts" />\n' | cat - $(JS_STAGE)/ossgate-upload.d.ts \
	  > $(JS_STAGE)/entry.d.ts && mv $(JS_STAGE)/entry.d.ts $(JS_STAGE)/ossgate-upload.d.ts
	sed 's/@VERSION@/$(JS_VERSION)/' packaging/npm/package.json > $(JS_STAGE)/package.json
	cp packaging/npm/README.md $(JS_STAGE)/
	cd $(JS_DIST)/npm && npm pack --silent ./package --pack-destination .
	node_modules/.bin/esbuild static/ossgate-upload.js --bundle --format=esm --target=es2022 \
	  --log-level=warning --outfile=$(JS_DIST)/ossgate-upload.js \
	  --banner:js='/*! ossgate-upload $(JS_VERSION), one file (MIT). Needs window.OSS (ali-oss) and the baseUrl option. */'

clean:
	rm -rf $(VENV) node_modules static/vendor *.egg-info
