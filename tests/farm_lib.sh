# Sourced (with the script's arguments) by the farm's cli tests: cli_farm.sh, cli_farm_scale.sh,
# cli_plan_auto.sh. Sets vf, data, src, a temporary folder $tmp (removed at exit, with any process
# still running from it), the pass/fail counters and the check helpers.
vf=$1; data=$2; src=$3
tmp=$(mktemp -d); trap 'pkill -9 -f "$tmp/" 2>/dev/null; rm -rf "$tmp"' EXIT
pass=0; fail=0
export VAEFARM_MODEL="$data/models/vaefarm-tiny.safetensors"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
ok() { pass=$((pass+1)); echo "ok   $1"; }
bad() { fail=$((fail+1)); echo "FAIL $1"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }
# all COND && COND ...: check "name" all "[ a = b ] && cmp -s x y"
all() { eval "$1"; }
mpi() { local n=$1; shift; mpirun -np "$n" --oversubscribe "$vf" "$@"; }
