#!/usr/bin/env bash
# The whole test suite, from a fresh clone: install what is needed (scripts/setup.sh), build
# warning-free (-Werror), run every ctest test, then rebuild with AddressSanitizer +
# UndefinedBehaviorSanitizer and run every test again. The generated test films are made once
# (build/testdata) and shared by both builds; fetched packages are cached in ~/.cache/vaefarm.
# Usage: scripts/test.sh            (VF_SKIP_SANITIZE=1 to skip the sanitizer pass)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=$(nproc 2>/dev/null || echo 2)

scripts/setup.sh
# setup.sh installed Slurm and munge: the Slurm test must run, not skip (it needs root)
[ "$(id -u)" = 0 ] && export VF_REQUIRE_SLURM=1
data="$root/build/testdata"

run_suite() { # build-dir, extra cmake args...
  local dir=$1; shift
  mkdir -p "$dir"
  cmake -S . -B "$dir" -DVF_WERROR=ON -DVF_TEST_DATA="$data" "$@" >"$dir/configure.log" 2>&1 \
    || { cat "$dir/configure.log"; exit 1; }
  grep "^-- vaefarm:" "$dir/configure.log" || true
  cmake --build "$dir" -j"$jobs"
  (cd "$dir" && ctest --output-on-failure -j"$jobs")
}

mkdir -p build
t0=$(date +%s)
echo "== release build + tests (build/)"
run_suite build -DCMAKE_BUILD_TYPE=RelWithDebInfo
if [ "${VF_SKIP_SANITIZE:-0}" != 1 ]; then
  echo "== ASan + UBSan build + tests (build-asan/)"
  mkdir -p build-asan
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  # -O1: the sanitizers' documented setting for tests (their checks are all kept; -O0 runs the
  # farm's kernels ~3× slower for nothing)
  run_suite build-asan -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_C_FLAGS_DEBUG=-g -O1" -DVF_SANITIZE=ON
fi
echo "== all tests passed in $(( $(date +%s) - t0 )) s"
