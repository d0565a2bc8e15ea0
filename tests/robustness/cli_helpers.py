"""Running ``python -m advlab`` in a subprocess and checking that a mistake gives one error line (exit code 2)."""

from __future__ import annotations

import subprocess
import sys


def advlab(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "advlab", *args], check=False, capture_output=True, text=True,
                          timeout=300, env=env)


def assert_one_line_error(completed: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """Exit code 2, no traceback, exactly one stderr line starting with ``error:`` and holding every fragment."""
    assert completed.returncode == 2, completed.stderr[-2000:]
    assert "Traceback" not in completed.stderr
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), completed.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]
