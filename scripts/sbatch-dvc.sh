#!/usr/bin/env bash
# The whole DVC pipeline as one SLURM job on a GPU node: `dvc repro`, or any dvc command you give.
#
#   sbatch scripts/sbatch-dvc.sh                                   # dvc repro
#   sbatch scripts/sbatch-dvc.sh exp run -S train.epochs=20        # an experiment
#   sbatch --partition=gpu --account=myproj --time=24:00:00 scripts/sbatch-dvc.sh
#
# Submit it from the project's root (the job runs there). sbatch's own options override the
# defaults below. The job's output goes to specimen-dvc-<job id>.log in the project's root.
# The job uses the project's .venv when it has one, else whatever `dvc` is on PATH (a module,
# a conda environment activated before sbatch: sbatch passes the environment on).
#
#SBATCH --job-name=specimen-dvc
#SBATCH --gpus=1
#SBATCH --cpus-per-task=8
#SBATCH --mem=32G
#SBATCH --time=12:00:00
#SBATCH --output=%x-%j.log
set -euo pipefail

cd "${SLURM_SUBMIT_DIR:-$PWD}"
if [ ! -f dvc.yaml ]; then
    echo "sbatch-dvc: no dvc.yaml in $PWD: submit from the project's root (cd to it, then sbatch)" >&2
    exit 2
fi
if [ -f .venv/bin/activate ]; then
    . .venv/bin/activate
fi
if ! command -v dvc >/dev/null; then
    echo "sbatch-dvc: dvc not found: install the project (pip install -e .) or activate its environment before sbatch" >&2
    exit 2
fi
[ $# -gt 0 ] || set -- repro
echo "sbatch-dvc: job ${SLURM_JOB_ID:-?} on $(hostname): dvc $* (GPUs: ${CUDA_VISIBLE_DEVICES:-none}, CPUs: ${SLURM_CPUS_PER_TASK:-?})"
exec dvc "$@"
