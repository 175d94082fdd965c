#!/usr/bin/env bash
# Run the asv benchmarks against the current Python environment (nothing is built or
# installed), record the results under the current commit, and publish the HTML.
#
#   benchmarks/run.sh                  # bench_mlp and bench_cnn, results for HEAD
#   benchmarks/run.sh --quick          # extra arguments go to `asv run`
#   COMMIT=<sha> benchmarks/run.sh     # record the results under another commit hash
#
# One thread, pinned to core 0 (see shared/BENCHMARKING.md). Then `asv preview` serves
# .asv/html, and `asv compare A B` compares two recorded commits.
set -uo pipefail
cd "$(dirname "$0")/.."

# Before any Python process starts: asv_runner imports NumPy before the benchmark module.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

[ -f "${ASV_MACHINE_FILE:-$HOME/.asv-machine.json}" ] || asv machine --yes >/dev/null

asv run --python=same --set-commit-hash "${COMMIT:-$(git rev-parse HEAD)}" \
    --record-samples --cpu-affinity 0 --show-stderr -b 'bench_(mlp|cnn)' "$@"
rc=$?  # 2 when a benchmark failed; the results of the others are still saved
asv publish
exit "$rc"
