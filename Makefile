.PHONY: check lint format type pytest

check: lint type pytest

lint:
	ruff check .
	ruff format --check .

format:
	ruff format .
	ruff check --fix .

type:
	mypy sb3_ac_plus tuning benchmarks

# -rs prints why tests were skipped (the PostgreSQL tests skip without the server)
pytest:
	python -m pytest -n 2 -rs --durations=10 tests
