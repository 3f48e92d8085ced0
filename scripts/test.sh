#!/usr/bin/env bash
# The tests in one command on a fresh Debian or Ubuntu machine: install what is missing, check the
# style, run pytest. Arguments go to pytest:
#
#   scripts/test.sh                  # everything: what CI runs (about 20 minutes on two cores)
#   scripts/test.sh -m "not slow"    # the quick loop (about 5 minutes): no whole-DAG runs
#   scripts/test.sh tests/test_clean.py -n 0
#
# System packages (installed when missing, as root or through sudo): Debian's chromium renders the
# HTML report and openssh-server is the SSH remote's server (tests/test_pipeline.py); slurm-wlm and
# munge make the one-node SLURM cluster (tests/test_slurm.py). Python packages go into .venv, at
# the versions of requirements.lock; an existing .venv is reused, and updated when they changed.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=$(for pkg in chromium openssh-server slurm-wlm munge; do dpkg -s "$pkg" >/dev/null 2>&1 || echo "$pkg"; done)
python3 -c "import ensurepip" 2>/dev/null || missing="$missing python3-venv"  # Debian's python3 lacks venv's pip
if [ -n "$missing" ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing $(echo $missing) (Debian packages the tests use)" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
fi

stamp=.venv/.specimen-installed
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
. .venv/bin/activate
if [ ! -f "$stamp" ] || [ requirements.lock -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    pip install --quiet --upgrade pip
    pip install --quiet -c requirements.lock -e '.[test]'
    touch "$stamp"
fi

# Style: ruff on the Python, snakefmt on the rule files (the settings are in pyproject.toml).
ruff check src tests bench
ruff format --check src tests bench
snakefmt --check Snakefile workflow/rules

pytest "$@"
