"""The Makefile's targets, as ``make check`` runs them."""

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_make_pytest_prints_why_tests_were_skipped() -> None:
    """The PostgreSQL tests skip without the server: make check must say so, not skip silently."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    dry_run = subprocess.run(["make", "-n", "pytest"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    (command,) = [shlex.split(line) for line in dry_run.splitlines() if " pytest " in f"{line} "]
    report_flags = [word for word in command if word.startswith("-r") and not word.startswith("--")]
    assert any("s" in flag[2:] or "a" in flag[2:] or "A" in flag[2:] for flag in report_flags), command
