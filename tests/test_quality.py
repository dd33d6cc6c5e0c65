"""The habits the project promises, checked by tools: ruff, mypy on the domain, import layers."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "ruff", "check", "reachflow", "tests", "bench"],
        [sys.executable, "-m", "mypy"],
        ["lint-imports"],
    ],
    ids=["ruff", "mypy-domain", "import-layers"],
)
def test_tool_is_clean(command: list[str]) -> None:
    if command[0] == "lint-imports":
        found = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
        assert found is not None, "import-linter is not installed"
        command = [found]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
