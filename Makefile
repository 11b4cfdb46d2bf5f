# Two commands: `make run` serves the screen, `make test` passes the whole suite. Both set up what they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: run test bench system-deps clean-db help

help:
	@echo "make run    set up (venv, database, demo city, 7-day history) and serve the screen"
	@echo "make test   set up (dev requirements, chromium) and run the whole test suite"
	@echo "make bench  run the benchmarks in bench/ and print their tables"

# Reports (PDF/PNG) are drawn by chromium with a CJK font: installed when absent; without them the screen
# still serves and says why a report cannot be made.
run: $(VENV)/.runtime
	@$(MAKE) --no-print-directory system-deps || echo "warning: chromium / fonts-noto-cjk not installed: reports are unavailable"
	$(PY) onescreen.py serve

test: $(VENV)/.dev system-deps
	$(PY) -m pytest

bench: $(VENV)/.dev system-deps
	$(PY) bench/run_all.py

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --disable-pip-version-check -q -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --disable-pip-version-check -q -r requirements-dev.txt
	touch $(VENV)/.runtime $@

# Browser tests drive Debian's chromium; exports and screenshots need a CJK font to draw Chinese.
system-deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null 2>&1 || missing="$$missing chromium-driver"; \
	fc-list 2>/dev/null | grep -qi "Noto Sans CJK" || missing="$$missing fonts-noto-cjk"; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

clean-db:
	rm -f var/onescreen.db var/onescreen.db-wal var/onescreen.db-shm
