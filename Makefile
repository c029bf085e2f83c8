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

pytest:
	python -m pytest -n 2 --durations=10 tests
