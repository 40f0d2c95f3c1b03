#!/bin/sh
# The baseline for bench/bench_inspector.py: torch_geometric 2.8.1 with torch-sparse (its
# NeighborLoader's sampler) built from source against torch 2.13.0, in its own venv outside the
# repository. ~15-20 minutes on 2 cores; run it under the machine-wide lock:
#   flock /tmp/tiered-heavy.lock sh bench/setup_pyg.sh
# Never part of CI. Reuses the venv when it already works.
set -eu
VENV=${PYG_VENV:-/work/bigdata/pygvenv}
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import torch_geometric, torch_sparse" 2>/dev/null; then
  echo "pyg venv ready: $VENV"; exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip setuptools wheel
"$VENV/bin/pip" install -q torch==2.13.0          # the CPU wheel (pip finds it on its usual index)
"$VENV/bin/pip" install -q torch_geometric==2.8.1 numpy scipy
MAX_JOBS=2 "$VENV/bin/pip" install -q --no-build-isolation torch-scatter torch-sparse
"$VENV/bin/python" -c "import torch, torch_geometric, torch_sparse; print('torch', torch.__version__, 'pyg', torch_geometric.__version__, 'torch_sparse', torch_sparse.__version__)"
