# Works on a fresh clone with only python3 (3.11) installed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1
export PREFECT_LOGGING_LEVEL ?= WARNING

.PHONY: install demo test lint bench lock vendor clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/odd17 demo

test: $(STAMP)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/run.py

# Refresh the pinned versions after changing dependencies in pyproject.toml.
lock: $(STAMP)
	$(BIN)/pip freeze --exclude-editable | grep -v '^odd17' > requirements.lock

# Front-end files vendored from their npm packages (the machines are offline: no CDN), pinned
# here; `make vendor` fetches them again (npm needed, only for this target) with their licences.
HTMX_VERSION := 2.0.11
AXE_VERSION := 4.14.1
HTMX_DIR := odd17/web/static/vendor
AXE_DIR := tests/web/vendor

vendor:
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	cd "$$tmp" && npm pack --silent htmx.org@$(HTMX_VERSION) axe-core@$(AXE_VERSION) >/dev/null && \
	mkdir htmx axe && tar -xzf htmx.org-$(HTMX_VERSION).tgz -C htmx && \
	tar -xzf axe-core-$(AXE_VERSION).tgz -C axe && cd "$(CURDIR)" && \
	mkdir -p $(HTMX_DIR) $(AXE_DIR) && \
	cp "$$tmp/htmx/package/dist/htmx.min.js" $(HTMX_DIR)/htmx.min.js && \
	cp "$$tmp/htmx/package/LICENSE" $(HTMX_DIR)/htmx.LICENSE && \
	cp "$$tmp/axe/package/axe.min.js" $(AXE_DIR)/axe.min.js && \
	cp "$$tmp/axe/package/LICENSE" $(AXE_DIR)/axe.LICENSE && \
	cp "$$tmp/axe/package/LICENSE-3RD-PARTY.txt" $(AXE_DIR)/axe.LICENSE-3RD-PARTY.txt && \
	printf 'htmx.org %s (npm), licence: htmx.LICENSE\n' $(HTMX_VERSION) > $(HTMX_DIR)/VERSIONS && \
	printf 'axe-core %s (npm, tests only), licence MPL-2.0: axe.LICENSE\n' $(AXE_VERSION) \
	  > $(AXE_DIR)/VERSIONS

clean:
	rm -rf $(VENV) odd17-demo .pytest_cache .hypothesis
