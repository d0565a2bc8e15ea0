"""The torch thread count on a busy machine (issue 15, item 3): free cores by default, overridable."""

from __future__ import annotations

import subprocess
import sys

import pytest

from advlab.errors import InputError
from advlab.threads import choose_threads, free_cores


def test_a_busy_machine_gets_the_free_cores_and_says_so() -> None:
    assert free_cores(2, 0.1) == 2 and free_cores(2, 1.2) == 1 and free_cores(2, 7.0) == 1
    assert free_cores(16, 3.4) == 13 and free_cores(4, None) == 4
    threads, note = choose_threads(None, cores=2, load_average=1.3, environment={})
    assert threads == 1 and "load average 1.3" in note
    assert choose_threads(None, cores=2, load_average=0.2, environment={}) == (2, None)


def test_an_explicit_choice_wins_and_a_bad_one_is_refused() -> None:
    assert choose_threads(3, cores=2, load_average=5.0, environment={}) == (3, None)
    assert choose_threads(None, cores=2, load_average=5.0, environment={"OMP_NUM_THREADS": "2"}) == (2, None)
    with pytest.raises(InputError, match="--threads must be >= 1"):
        choose_threads(0)


def test_the_cli_option_sets_torch_threads() -> None:
    code = "import sys, torch; from advlab.cli import app; sys.argv=['advlab','--threads','1','models']\n" \
           "try:\n    app()\nexcept SystemExit:\n    pass\nprint('THREADS', torch.get_num_threads())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"})
    assert "THREADS 1" in out.stdout, out.stderr
