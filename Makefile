# bulkmeet — set-up commands. Each target installs what it needs into .venv first.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: install check test demo demo-registrar bench bench-smoke bench-registrar bench-http clean browser

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11 or newer is needed (python3.11 or python3 on PATH)"; exit 2; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

install: $(STAMP)

## make check: ruff and mypy (configured in pyproject.toml)
check: $(STAMP)
	BIN=$(BIN) scripts/check

## make browser: headless Chromium (Debian's package) for the run-report tests, when missing
browser:
	scripts/install-browser

## make test: the static checks, then the whole test suite (emulator conformance, auth, pipeline, reruns, bench smoke)
test: check browser
	$(BIN)/python -m pytest -n 2 -q

## make demo: the main job end to end on samples/, against the embedded emulator
demo: $(STAMP)
	@rm -f samples/schedule.results.xlsx
	@echo "== bulkmeet run samples/schedule.xlsx --config samples/bulkmeet.toml --emulator"
	@$(BIN)/bulkmeet run samples/schedule.xlsx --config samples/bulkmeet.toml --emulator; \
	  status=$$?; \
	  echo "== exit status $$status (1 is expected: the sample has deliberately invalid rows and an"; \
	  echo "   organizer without an access policy; open samples/schedule.results.xlsx to see them,"; \
	  echo "   samples/schedule.results.html for the run report, and samples/schedule.calendars/ and"; \
	  echo "   samples/schedule.handouts/ for what teachers and students get)"; \
	  test $$status -le 1

## make demo-registrar: a registrar export as it comes (weekly patterns, term table, staff list) end to end
demo-registrar: $(STAMP)
	@rm -f samples/registrar/export.results.*
	@echo "== bulkmeet run samples/registrar/export.csv --config samples/registrar/bulkmeet.toml --emulator"
	@$(BIN)/bulkmeet run samples/registrar/export.csv --config samples/registrar/bulkmeet.toml --emulator; \
	  status=$$?; \
	  echo "== exit status $$status (1 is expected: two instructors are deliberately missing from or"; \
	  echo "   ambiguous in samples/registrar/staff.csv; three rows are skipped by [[skip]] rules)"; \
	  test $$status -le 1

## make bench-registrar: 5,000 sections -> ~150,000 sessions read, filtered, joined and planned
bench-registrar: $(STAMP)
	$(BIN)/python bench/registrar.py

## make bench-http: the HTTP clients alone (requests, urllib3, http.client, bulkmeet's http11)
bench-http: $(BENCH_STAMP)
	$(BIN)/python bench/http_clients.py

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,bench]'
	@touch $@

## make bench: benchmarks against the emulator in its own process (prints a table, writes bench/results.json)
bench: $(BENCH_STAMP)
	$(BIN)/python bench/run.py

## make bench-smoke: every scenario at toy sizes, in seconds (checks that bench/ still runs; no numbers kept)
bench-smoke: $(BENCH_STAMP)
	$(BIN)/python bench/run.py --smoke

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
	rm -f samples/*.results.* samples/*.journal.* samples/*.emulator-state.json
	rm -rf samples/*.calendars samples/*.handouts
	rm -rf samples/registrar/export.results.* samples/registrar/export.journal.* \
	  samples/registrar/export.emulator-state.json samples/registrar/export.calendars \
	  samples/registrar/export.handouts
