"""How many torch threads to use: the cores other processes leave free.

On a 2-core machine with another process holding one core, torch's default of one thread per core made an
evaluation 7-10x slower than one thread (threads wait at every barrier for the busy core). The default here is
the number of cores minus the 1-minute load average, at least 1; ``--threads`` or ``OMP_NUM_THREADS`` override it.
"""

from __future__ import annotations

import os

from advlab.errors import InputError


def free_cores(cores: int, load_average: float | None) -> int:
    """Cores minus the load other processes put on them (rounded), at least 1; all cores when load is unknown."""
    if load_average is None:
        return max(1, cores)
    return max(1, min(cores, cores - round(load_average)))


def choose_threads(requested: int | None, *, cores: int | None = None, load_average: float | None = None,
                   environment: dict[str, str] | None = None) -> tuple[int, str | None]:
    """``(threads, busy_note)``: ``requested`` if given, else ``$OMP_NUM_THREADS``, else the free cores.

    ``busy_note`` explains a default below the core count (the machine is busy), else None.
    """
    env = os.environ if environment is None else environment
    if requested is not None:
        if requested < 1:
            raise InputError(f"--threads must be >= 1, got {requested}")
        return requested, None
    if env.get("OMP_NUM_THREADS", "").strip().isdigit() and int(env["OMP_NUM_THREADS"]) > 0:
        return int(env["OMP_NUM_THREADS"]), None
    cores = cores if cores is not None else (os.cpu_count() or 1)
    if load_average is None and hasattr(os, "getloadavg"):
        load_average = os.getloadavg()[0]
    threads = free_cores(cores, load_average)
    if threads == cores:
        return threads, None
    return threads, (f"using {threads} torch thread(s) of {cores} cores: load average {load_average:.1f} "
                     "(advlab --threads N to change)")


def configure_threads(requested: int | None) -> str | None:
    """Set torch's intra-op threads by :func:`choose_threads`; returns the busy-machine note, if any."""
    import torch

    threads, note = choose_threads(requested)
    torch.set_num_threads(threads)
    return note
