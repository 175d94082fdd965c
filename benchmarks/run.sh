#!/usr/bin/env bash
# Run the asv benchmarks against the current Python environment (nothing is built or
# installed), record the results under the current commit, and publish the HTML.
#
#   benchmarks/run.sh                  # every bench_* family and bench_certify for HEAD
#   benchmarks/run.sh --quick          # extra arguments go to `asv run`
#   COMMIT=<rev> benchmarks/run.sh     # record the results under another commit of this
#                                      # repository (a sha, branch or tag naming a commit)
#
# One thread, pinned to core 0 (see docs/BENCHMARKING.md). The dashboard is published by
# benchmarks/publish.py (asv publish, with the CDN scripts and styles replaced by the copies in
# benchmarks/vendor, so it works offline). Then `asv preview` serves .asv/html, and
# `asv compare A B` compares two recorded commits.
set -uo pipefail
cd "$(dirname "$0")/.."

# asv files results under a commit: it reads the commit's date to place it on the graphs, so a
# hash that names no commit here fails inside asv (asv.repo.NoSuchNameError). Check it first.
rev="${COMMIT:-HEAD}"
if ! sha=$(git rev-parse --verify --quiet "${rev}^{commit}"); then
    echo "run.sh: COMMIT=${rev} is not a commit of this repository. asv records results only" \
         "under an existing commit: commit the code that runs first (for a second hash of the" \
         "same tree, git commit --allow-empty) and pass that commit's hash." >&2
    exit 1
fi
if ! git diff --quiet "$sha" -- 2>/dev/null; then
    echo "run.sh: warning: the working tree differs from ${sha:0:12}; the numbers are filed" \
         "under a commit that does not hold the code that ran" >&2
fi

# Before any Python process starts: asv_runner imports NumPy before the benchmark module.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

# asv reads ~/.asv-machine.json and names this machine after the host; without an entry for
# it, asv run would ask questions.
grep -qs "\"$(python3 -c 'import platform; print(platform.node())')\"" "$HOME/.asv-machine.json" \
    || asv machine --yes >/dev/null

asv run --python=same --set-commit-hash "$sha" \
    --record-samples --cpu-affinity 0 --show-stderr \
    -b 'bench_(mlp|cnn|rnn|generative|practice|compiled|certify)' "$@"
rc=$?  # 2 when a benchmark failed; the results of the others are still saved
python3 benchmarks/publish.py || { [ "$rc" -eq 0 ] && rc=1; }
exit "$rc"
