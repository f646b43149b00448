"""ruff (configured in pyproject.toml) finds nothing to lint and nothing to reformat in the Python code."""

import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO

PYTHON_TREES = ["workflow", "tests", "benchmarks"]


def ruff(*args):
    # The ruff next to this interpreter (the project's venv), else one on PATH.
    local = Path(sys.executable).with_name("ruff")
    executable = str(local) if local.exists() else shutil.which("ruff")
    assert executable, "ruff is not installed: pip install -e '.[test]'"
    return subprocess.run([executable, *args, *PYTHON_TREES], cwd=REPO, capture_output=True, text=True)


def test_ruff_lint_is_clean():
    result = ruff("check", "--no-cache")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_ruff_format_is_clean():
    result = ruff("format", "--check", "--no-cache")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
