#!/usr/bin/env bash
# The farm under a real Slurm: a one-node cluster on this machine (scripts/slurm_cluster.sh) runs
# the sbatch templates in slurm/ with their SITE lines set for it (partition debug, one node,
# 2 ranks of 1 core), on the 300-frame test film (6 shots, 17 chunks at 72x128):
#   a  sbatch --ntasks=2 of each template gives output byte-identical to a direct mpirun -np 2 run
#   b1 a job stopped by its time limit mid-film (--time=1, the template's USR1 warning) requeues
#      itself and finishes: same bytes, no chunk done twice, the first run's chunks resumed
#   b2 the same without the warning (a site without --signal): Slurm ends the job at its limit
#      (TIMEOUT); the same sbatch again resumes it: same bytes, no chunk done twice
#   c  scancel mid-job leaves nothing half-written (nothing at the output path, every segment
#      under its final name complete and journaled); the same sbatch again completes, same bytes
#   d  a film that fails (a missing input) leaves the job FAILED with vaefarm's exit code 4
#   and README.md carries both templates' text verbatim.
# "Mid-film" on any machine: once a job has journaled a chunk its two ranks are frozen (SIGSTOP;
# the job stays RUNNING, as a slow film would) until its time limit comes; b1's ranks are thawed
# as soon as the warning has come, so that they take the template's SIGTERM, and once b1 is
# requeued its limit is lifted to 10 minutes (so that a slow machine does not requeue it again
# and again). Slurm checks time limits every 30 s, so b1's warning comes 10 to 40 s after its
# start and b2 ends 60 to 90 s after its start: the test takes about 2 minutes, mostly waiting
# (the other jobs run meanwhile, side by side: the node offers 8 CPUs).
# Skipped (exit 77) where Slurm or munge is not installed or not root, unless VF_REQUIRE_SLURM=1
# (scripts/test.sh sets it after scripts/setup.sh installed them): then that is a failure.
# Usage: cli_slurm.sh VAEFARM TESTDATA SOURCE_DIR   (ctest passes them)
set -euo pipefail
vf=$1; data=$2; src=$3
export PATH=$PATH:/usr/sbin:/sbin   # munged, slurmctld, slurmd

skip() {
  if [ "${VF_REQUIRE_SLURM:-0}" = 1 ]; then echo "FAIL $1 (VF_REQUIRE_SLURM=1)"; exit 1; fi
  echo "cli_slurm: skipped: $1"; exit 77
}
for b in munged mungekey slurmctld slurmd sbatch srun scontrol squeue scancel; do
  command -v $b >/dev/null || skip "$b not found: Slurm and munge are not installed (scripts/setup.sh installs slurm-wlm and munge)"
done
[ "$(id -u)" = 0 ] || skip "not root: the test cluster's slurmd must run as root"

# a short folder: munge's socket path must fit in 107 bytes
base=${TMPDIR:-/tmp}; [ ${#base} -le 40 ] || base=/tmp
tmp=$(mktemp -d "$base/vfslurm.XXXXXX")
cluster=$tmp/cluster
stopped=""   # PIDs this test froze
watcher=""   # the background watcher of job b1
cleanup() {   # keeps the test's exit status
  set +e
  [ -n "$watcher" ] && kill "$watcher" 2>/dev/null
  [ -n "$stopped" ] && kill -CONT $stopped 2>/dev/null
  "$src/scripts/slurm_cluster.sh" down "$cluster" >/dev/null 2>&1 || true
  local left; left=$(pgrep -f -- "$tmp/" || true)
  [ -n "$left" ] && kill -9 $left 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM   # ctest's timeout, Ctrl-C: clean up too
cd "$tmp"
pass=0; fail=0
ok() { pass=$((pass+1)); echo "ok   $1"; }
bad() { fail=$((fail+1)); echo "FAIL $1"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }
all() { eval "$1"; }
t_start=$(date +%s)
el() { echo "$(( $(date +%s) - t_start )) s"; }

# --- README.md carries the templates' text, verbatim
readme_has() { python3 - "$src/README.md" "$src/slurm/$1" <<'PY'
import sys
readme, tpl = open(sys.argv[1]).read(), open(sys.argv[2]).read()
assert "\n```bash\n" + tpl + "```\n" in readme, "README.md lacks the text of " + sys.argv[2]
PY
}
for t in vaefarm-gpu.sbatch vaefarm-cpu.sbatch; do check "README.md has slurm/$t verbatim" readme_has $t; done

# --- the cluster
for v in $(env | grep -o '^SLURM_[A-Z_]*' || true); do unset "$v"; done   # not the caller's job
export VF_SLURM_CPUS=8 VF_SLURM_CRED_EXPIRE=5   # 4 jobs of 2 ranks side by side; requeue in ~6 s
t0=$(date +%s.%N)
if ! "$src/scripts/slurm_cluster.sh" up "$cluster"; then
  bad "the cluster comes up"; tail -n 20 "$cluster"/log/* 2>/dev/null; exit 1
fi
ok "cluster up in $(python3 -c "print(round($(date +%s.%N)-$t0,2))") s"
export SLURM_CONF=$cluster/etc/slurm.conf
export VAEFARM=$vf VAEFARM_MODEL="$data/models/vaefarm-tiny.safetensors"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# --- the film: film_grey.mkv read in place (never written), its 6 shots, 17 chunks
films=$data/films
mkyaml() { # NAME
  { printf 'version: 1\ninput: %s\noutput: %s.mkv\ninference_size: [72, 128]\n' "$films/film_grey.mkv" "$1"
    printf 'shots:\n  detect: off\n  list:\n'
    local s=0 i=0 e
    for e in 50 65 215 245 265 300; do
      printf '    - { start: %d, end: %d, reference: %s/film_ref_%d.png }\n' $s $e "$films" $i
      s=$e; i=$((i+1))
    done
    printf 'chunks: { length: 20, warmup: 4 }\n'; } >"$tmp/$1.yaml"
}
CHUNKS=17

# A template with its SITE lines set for this cluster. Every SITE line the test relies on must be
# there (a renamed knob fails here, clearly).
site() { # TEMPLATE NAME TIME SIGNAL(keep|@N|none)
  python3 - "$src/slurm/$1" "$2" "$3" "$4" "$tmp" >"$tmp/$2.sbatch" <<'PY'
import re, sys
path, name, time, sig, tmp = sys.argv[1:]
s = open(path).read()
def sub(pat, rep, need=True):
    global s
    s, n = re.subn(pat, rep, s, flags=re.M)
    if need and n != 1:
        sys.exit(f"{path}: expected one line matching {pat!r}, found {n}")
sub(r"^(#SBATCH --partition=)\S+", r"\1debug")
sub(r"^#SBATCH --account=.*\n", "")
sub(r"^(#SBATCH --nodes=)\S+", r"\g<1>1")
sub(r"^(#SBATCH --ntasks-per-node=)\S+", r"\g<1>2")
sub(r"^(#SBATCH --cpus-per-task=)\S+", r"\g<1>1")
sub(r"^#SBATCH --gpus-per-task=.*\n", "", need="gpu" in path)   # no GPU here
sub(r"^(#SBATCH --ntasks=)\S+", r"\g<1>2", need="gpu" in path)    # nodes x GPUs per node
sub(r"^(#SBATCH --time=)\S+", r"\g<1>" + time)
sub(r"^(#SBATCH --output=)\S+", r"\g<1>" + f"{tmp}/{name}-%j.out")
if sig == "none":
    sub(r"^#SBATCH --signal=.*\n", "")
elif sig != "keep":
    sub(r"^(#SBATCH --signal=B:USR1)@\d+", r"\g<1>" + sig)
sys.stdout.write(s)
PY
}
submit() { # NAME [sbatch options]: the job id
  local name=$1; shift
  local id
  id=$(sbatch --parsable --ntasks=2 "$@" "$tmp/$name.sbatch" "$tmp/$name.yaml" | cut -d';' -f1)
  [ -n "$id" ] || { echo "FAIL sbatch $name: no job id" >&2; exit 1; }
  echo "$id"
}
jstate() { # JOB: its state; scontrol asked again (up to 5 times) when it answers nothing, as it
  local i s=""  # can when slurmctld is slow to answer on a loaded machine
  for i in 1 2 3 4 5; do
    s=$(scontrol show job "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2 || true)
    [ -n "$s" ] && break; sleep 1
  done
  echo "$s"
}
# a job has ended only in a final state. Anything else waits on: a state flag shown in place of
# RUNNING (SIGNALING, STOPPED, REQUEUED...) and no answer at all are not an end (the 2026-12-03
# CI run: b1's watcher took one of those for an end and never thawed b1's ranks). Every wait has
# a deadline in seconds ($SECONDS), however slowly scontrol answers.
jended() { case $(jstate "$1") in COMPLETED|FAILED|TIMEOUT|CANCELLED|NODE_FAIL|PREEMPTED|BOOT_FAIL|DEADLINE|OUT_OF_MEMORY|REQUEUE_HOLD|SPECIAL_EXIT|REVOKED) return 0 ;; *) return 1 ;; esac; }
jfield() { scontrol show job "$1" 2>/dev/null | grep -o "$2=[^ ]*" | cut -d= -f2 || true; }
wait_done() { # JOB SECONDS: until the job has ended (a final state: jended) or SECONDS passed
  local end=$((SECONDS + $2))
  while [ $SECONDS -lt $end ]; do
    jended "$1" && break
    sleep 0.2
  done
  jstate "$1"
}
jcount() { [ -f "$tmp/$1.mkv.vaefarm/journal" ] && wc -l <"$tmp/$1.mkv.vaefarm/journal" || echo 0; }
ranks() { pgrep -f -- "^$vf $tmp/$1.yaml" || true; }
freeze() { # NAME JOB: once the job has journaled a chunk, SIGSTOP its two ranks; K: the count
  local p end=$((SECONDS + 60))
  K=0
  while [ $SECONDS -lt $end ]; do
    p=$(ranks "$1")
    if [ "$(jcount "$1")" -ge 1 ] && [ "$(echo $p | wc -w)" = 2 ]; then
      kill -STOP $p; stopped="$stopped $p"; sleep 0.2; K=$(jcount "$1"); return 0
    fi
    jended "$2" && return 0
    sleep 0.05
  done
}
thaw() { local p; p=$(ranks "$1"); [ -n "$p" ] && kill -CONT $p; return 0; }
chunks_of() { python3 -c "import json,sys; print(' '.join(str(json.loads(l)['chunk']) for l in open(sys.argv[1])))" "$tmp/$1.mkv.vaefarm/journal"; }
report() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$tmp/$1.mkv.vaefarm/report.json" "$2" 2>/dev/null || echo "?"; }
# the journal: every chunk once, and the first K entries are those journaled before the stop
journal_ok() { # NAME "CHUNKS BEFORE"
  python3 - "$(chunks_of "$1")" "$2" "$CHUNKS" <<'PY'
import sys
a, b, n = sys.argv[1].split(), sys.argv[2].split(), int(sys.argv[3])
assert a[:len(b)] == b and sorted(map(int, a)) == list(range(n)), (b, a)
PY
}
# nothing half-written: no output nor its temporary, and every segment under its final name is
# journaled with its sha256
clean_stop() { # NAME
  [ ! -e "$tmp/$1.mkv" ] && [ -z "$(ls -a "$tmp" | grep "^\.$1\." || true)" ] &&
  python3 - "$tmp/$1.mkv.vaefarm" <<'PY'
import glob, hashlib, json, os, sys
w = sys.argv[1]
j = {e["segment"]: e["checksum"] for e in map(json.loads, open(w + "/journal"))}
segs = sorted(os.path.relpath(p, w) for p in glob.glob(w + "/segments/*.mkv"))
assert segs == sorted(j), (segs, sorted(j))
for s in segs:
    assert hashlib.sha256(open(os.path.join(w, s), "rb").read()).hexdigest() == j[s], s
PY
}

for n in ref a_gpu a_cpu b1 b2 c; do mkyaml $n; done
site vaefarm-gpu.sbatch a_gpu 10 keep
site vaefarm-cpu.sbatch a_cpu 10 keep
site vaefarm-cpu.sbatch b1 1 @20       # warning 20 s (+ up to 30 s) before a 1-minute limit
site vaefarm-cpu.sbatch b2 1 none
site vaefarm-cpu.sbatch c 10 keep

# --- b1, b2: start them first (they wait for their time limit while the rest runs)
b1=$(submit b1); b2=$(submit b2)
freeze b1 "$b1"; k_b1=$K; chunks_b1=$(chunks_of b1 2>/dev/null || true)
freeze b2 "$b2"; k_b2=$K
check "b1 (job $b1) frozen mid-film: $k_b1 of $CHUNKS chunks journaled" all '[ "$k_b1" -ge 1 ] && [ "$k_b1" -lt $CHUNKS ]'
check "b2 (job $b2) frozen mid-film: $k_b2 of $CHUNKS chunks journaled" all '[ "$k_b2" -ge 1 ] && [ "$k_b2" -lt $CHUNKS ]'
# b1's watcher, beside the rest: once the warning has come, thaw the ranks (they take the
# template's SIGTERM); once the job is requeued, lift its limit to 10 minutes, so that a slow
# machine does not stop and requeue it again and again (correct too, only longer)
b1_watch() {
  local end=$((SECONDS + 300))
  while [ $SECONDS -lt $end ]; do
    grep -q "time limit or preemption near" "$tmp/b1-$b1.out" 2>/dev/null && break
    jended "$b1" && return 0
    sleep 0.2
  done
  jfield "$b1" RunTime >"$tmp/b1.warned"
  thaw b1
  end=$((SECONDS + 300))
  while [ $SECONDS -lt $end ]; do
    [ "$(jfield "$b1" Restarts)" -ge 1 ] 2>/dev/null && { scontrol update JobId="$b1" TimeLimit=10 || true; return 0; }
    jended "$b1" && return 0
    sleep 0.2
  done
}
b1_watch & watcher=$!

# --- the reference: a direct mpirun -np 2
rc=0; mpirun -np 2 --oversubscribe "$vf" "$tmp/ref.yaml" --quiet --threads 1 >"$tmp/ref.log" 2>&1 || rc=$?
check "direct mpirun -np 2 (exit $rc) [$(el)]" all '[ "$rc" = 0 ] && [ -s "$tmp/ref.mkv" ]'

# --- a: each template through sbatch --ntasks=2
a_gpu=$(submit a_gpu); a_cpu=$(submit a_cpu)
for n in a_gpu a_cpu; do
  j=${!n}; st=$(wait_done "$j" 300)
  check "$n (job $j): $st, exit $(jfield "$j" ExitCode) [$(el)]" all '[ "$st" = COMPLETED ] && [ "$(jfield "$j" ExitCode)" = 0:0 ]'
  check "$n: byte-identical to the direct run" cmp -s "$tmp/ref.mkv" "$tmp/$n.mkv"
  check "$n: 2 ranks, $CHUNKS chunks" all '[ "$(report $n ranks)" = 2 ] && [ "$(report $n chunks_run)" = $CHUNKS ]'
done

# --- c: scancel mid-job, then the same sbatch again
c=$(submit c)
freeze c "$c"; k_c0=$K
scancel "$c"
st=$(wait_done "$c" 120)
# a chunk that finishes while the ranks stop is journaled too: count them after the end
k_c=$(jcount c); chunks_c=$(chunks_of c 2>/dev/null || true)
check "c (job $c): scancel mid-film ($k_c0 of $CHUNKS chunks journaled; $k_c at the end): $st [$(el)]" \
  all '[ "$st" = CANCELLED ] && [ "$k_c0" -ge 1 ] && [ "$k_c" -lt $CHUNKS ]'
check "c: nothing half-written (no output, every segment complete and journaled)" clean_stop c
c2=$(submit c); st=$(wait_done "$c2" 300)
check "c: the same sbatch again (job $c2): $st [$(el)]" all '[ "$st" = COMPLETED ] && [ "$(jfield "$c2" ExitCode)" = 0:0 ]'
check "c: byte-identical to the direct run" cmp -s "$tmp/ref.mkv" "$tmp/c.mkv"
check "c: $k_c chunks resumed, none done twice" \
  all '[ "$(report c chunks_resumed)" = "$k_c" ] && journal_ok c "$chunks_c"'

# --- d: a film that fails leaves the job FAILED with vaefarm's exit code (4: a missing file)
sed "s#^input: .*#input: $tmp/missing.mkv#" "$tmp/ref.yaml" >"$tmp/d.yaml"
site vaefarm-cpu.sbatch d 10 keep
d=$(submit d); st=$(wait_done "$d" 120)
check "d: a film with a missing input (job $d): $st, exit $(jfield "$d" ExitCode), not requeued" \
  all '[ "$st" = FAILED ] && [ "$(jfield "$d" ExitCode)" = 4:0 ] && [ "$(jfield "$d" Restarts)" = 0 ]'

# --- b1: the warning, a clean stop, the requeue, the rest of the film
wait "$watcher" || true
check "b1: the time-limit warning came ($(cat "$tmp/b1.warned" 2>/dev/null) into the job)" \
  grep -q "time limit or preemption near" "$tmp/b1-$b1.out"
st=$(wait_done "$b1" 300)
check "b1: requeued $(jfield "$b1" Restarts) time(s), then $st, exit $(jfield "$b1" ExitCode) [$(el)]" \
  all '[ "$st" = COMPLETED ] && [ "$(jfield "$b1" Restarts)" -ge 1 ] && [ "$(jfield "$b1" ExitCode)" = 0:0 ]'
check "b1: the first run stopped cleanly (exit 10) and requeued itself" \
  all 'grep -q "Exited with exit code 10" "$tmp/b1-$b1.out" && grep -q "requeued; it resumes" "$tmp/b1-$b1.out"'
check "b1: byte-identical to the direct run" cmp -s "$tmp/ref.mkv" "$tmp/b1.mkv"
check "b1: the first run's $k_b1 chunks kept, none done twice (resumed last: $(report b1 chunks_resumed))" \
  all 'journal_ok b1 "$chunks_b1" && [ "$(report b1 chunks_resumed)" -ge "$k_b1" ]'

# --- b2: killed at its time limit (TIMEOUT), then the same sbatch again
st=$(wait_done "$b2" 240)
k_b2=$(jcount b2); chunks_b2=$(chunks_of b2 2>/dev/null || true)
check "b2: ended by its time limit: $st, $k_b2 chunks journaled [$(el)]" \
  all '[ "$st" = TIMEOUT ] && grep -q "DUE TO TIME LIMIT" "$tmp/b2-$b2.out" && [ "$k_b2" -lt $CHUNKS ]'
check "b2: nothing half-written" clean_stop b2
b2b=$(submit b2 --time=10); st=$(wait_done "$b2b" 300)
check "b2: the same sbatch again (job $b2b): $st [$(el)]" all '[ "$st" = COMPLETED ] && [ "$(jfield "$b2b" ExitCode)" = 0:0 ]'
check "b2: byte-identical to the direct run" cmp -s "$tmp/ref.mkv" "$tmp/b2.mkv"
check "b2: $k_b2 chunks resumed, none done twice" \
  all '[ "$(report b2 chunks_resumed)" = "$k_b2" ] && journal_ok b2 "$chunks_b2"'

if [ "$fail" != 0 ]; then
  for f in "$tmp"/*-*.out; do echo "--- $f"; grep -v '^\S* vaefarm\[0\]: \[' "$f" | tail -n 15; done
  tail -n 20 "$cluster/log/slurmctld.log"
fi
echo "cli_slurm: $pass passed, $fail failed in $(el)"
[ "$fail" = 0 ]
