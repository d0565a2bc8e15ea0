#!/usr/bin/env bash
# Create .venv (if missing) and install advlab into it, with a CPU build of PyTorch on machines without a
# CUDA GPU (an unpinned `pip install torch` pulls several GB of CUDA packages onto CPU-only machines).
#
#   scripts/setup.sh          # the package and its runtime dependencies
#   scripts/setup.sh test     # ... plus the test tools
#   scripts/setup.sh bench    # ... plus the peer libraries for benchmarks/
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-python3}"

if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
pip=(.venv/bin/python -m pip install --disable-pip-version-check -q)

if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    "${pip[@]}" "torch>=2.3"                      # CUDA machine: the default build
  elif "${pip[@]}" "torch==2.13.0+cpu" 2>/dev/null; then
    :                                             # a local CPU wheel (offline machines carry one)
  else
    "${pip[@]}" torch --index-url https://download.pytorch.org/whl/cpu
  fi
fi

if [ -n "$extras" ]; then
  "${pip[@]}" -e ".[$extras]"
else
  "${pip[@]}" -e .
fi
if [[ ",$extras," == *",bench,"* ]]; then
  # torchattacks declares torchvision (and an old requests) but imports neither; with its dependencies pip
  # would swap the CPU torch for a CUDA build of several GB.
  "${pip[@]}" --no-deps torchattacks==3.5.1
  # The official AutoAttack (Croce & Hein's fra31/auto-attack code, on PyPI as pyautoattack); it needs only torch
  # and numpy, which are here already.
  "${pip[@]}" --no-deps pyautoattack==0.2.0
fi
.venv/bin/python -c "import advlab, torch; print(f'advlab {advlab.__version__} ready (torch {torch.__version__})')"
