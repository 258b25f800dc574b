#!/bin/sh
# tests/fuzz/run.sh TARGET SECONDS [MAX_LEN]: one libFuzzer process on corpus/TARGET (seeded
# beforehand, see the report), artifacts under findings/TARGET/, the log in findings/TARGET.log.
set -eu
t=$1; secs=$2; len=${3:-8192}
cd "$(dirname "$0")/../.."
mkdir -p "corpus/$t" "findings/$t"
dict=""; [ -f "tests/fuzz/dict/$t.dict" ] && dict="-dict=tests/fuzz/dict/$t.dict"
exec build-fuzz/fuzz_$t "corpus/$t" $dict -max_total_time="$secs" -max_len="$len" \
    -rss_limit_mb=2048 -timeout=10 -artifact_prefix="findings/$t/" -print_final_stats=1 \
    >"findings/$t.log" 2>&1
