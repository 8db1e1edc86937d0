# Benchmarks: jobrunner beside huey and at scale, rendered to docs/benchmarks.md.
# bench.run exits 1 when a run failed (the document is still written and the report
# lists the failure), 130 when interrupted (no document): render only for 0 or 1.
PYTHON ?= .venv/bin/python
RESULTS := bench/results

.PHONY: bench bench-pg bench-flow bench-quick report dist

bench:
	$(PYTHON) -m bench.run --out $(RESULTS)/latest.json; status=$$?; \
	if [ $$status -le 1 ]; then $(PYTHON) -m bench.report $(RESULTS)/latest.json || exit $$?; fi; \
	$(PYTHON) -m bench.pg --out $(RESULTS)/postgres.json --doc docs/benchmarks.md || status=1; \
	$(MAKE) bench-flow || status=1; \
	exit $$status

# jobrunner on PostgreSQL beside procrastinate: its section of docs/benchmarks.md only
bench-pg:
	$(PYTHON) -m bench.pg --out $(RESULTS)/postgres.json --doc docs/benchmarks.md

# Flow control's cost on both backends: a queue limited to 1 across three daemons beside
# one daemon, and (with BASELINE=a checkout from before flow control) the plain drain.
PG_URL ?= postgresql://postgres@127.0.0.1:5432/postgres
bench-flow:
	$(PYTHON) -m bench.flow --doc docs/benchmarks.md $(if $(BASELINE),--baseline $(BASELINE))
	$(PYTHON) -m bench.flow --db $(PG_URL) --doc docs/benchmarks.md $(if $(BASELINE),--baseline $(BASELINE))

# Quick sizes; rendered beside its JSON (git-ignored), not over docs/benchmarks.md.
bench-quick:
	$(PYTHON) -m bench.run --quick --out $(RESULTS)/quick.json; status=$$?; \
	if [ $$status -le 1 ]; then $(PYTHON) -m bench.report $(RESULTS)/quick.json \
		--out $(RESULTS)/quick.md --img $(RESULTS)/img || exit $$?; fi; \
	exit $$status

report:
	$(PYTHON) -m bench.report $(RESULTS)/latest.json

# dist/jobrunner: one executable file, no Python needed where it runs (packaging/dist.py)
dist:
	python3 packaging/dist.py
