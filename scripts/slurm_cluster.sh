#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for the Slurm tests (tests/cli_slurm.sh) and for trying
# the sbatch templates in slurm/: munged, slurmctld and slurmd from Debian 12's packages
# (slurm-wlm, munge: scripts/setup.sh installs them), started by hand (no systemd), with
# everything they write under DIR:
#   DIR/etc/slurm.conf   the configuration (clients need SLURM_CONF=DIR/etc/slurm.conf; DIR/env sets it)
#   DIR/munge/           its own munge key, socket, pid, log and seed (the system's munged, if
#                        any, is not used: slurm.conf points at this socket with AuthInfo=socket=)
#   DIR/state/           slurmctld's state, slurmd's spool      DIR/log/   the daemons' logs
#   DIR/run/*.pid        the PIDs this script started           DIR/ports  the two TCP ports
#
# Usage: scripts/slurm_cluster.sh up DIR       start it; waits until the node is idle (exit 0)
#        scripts/slurm_cluster.sh status DIR   the daemons' PIDs and `sinfo`; exit 0 when all run
#        scripts/slurm_cluster.sh down DIR     cancel its jobs, stop what `up` started (by PID)
# Then:  . DIR/env; sbatch ...                 (or SLURM_CONF=DIR/etc/slurm.conf sbatch ...)
#
# Environment: VF_SLURM_PORT (default 16817): the first port tried for slurmctld; it and the next
# free port (slurmd) are used. VF_SLURM_CPUS (default: this machine's, from `slurmd -C`): CPUs the
# node offers (more than the machine has: SlurmdParameters=config_overrides, for tests that run
# jobs side by side). VF_SLURM_KILL_WAIT (default 30, Slurm's): KillWait, the seconds between
# SIGTERM and SIGKILL at a time limit or scancel. VF_SLURM_CRED_EXPIRE (default 10; Slurm's is
# 120): AuthInfo cred_expire, which is also how long a requeued job waits before it may start
# again. Pending jobs are looked at every 2 s (SchedulerParameters sched_interval, bf_interval;
# Slurm's: 60 s, 30 s), so that a requeued job starts again within seconds. Time limits and
# --signal warnings are checked every 30 s whatever the configuration (slurmctld's
# PERIODIC_TIMEOUT, compiled in).
# Runs as root (slurmd must; the jobs run as root). Exit codes: 0 ok, 1 failure (the message says
# which daemon and its log), 2 bad usage, 3 Slurm or munge not installed.
set -euo pipefail

die() { echo "slurm_cluster: $*" >&2; exit 1; }
export PATH=$PATH:/usr/sbin:/sbin   # munged, slurmctld, slurmd
usage() { sed -n '12,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# = 2 ] || usage
cmd=$1
case $cmd in up|down|status) ;; *) usage ;; esac
mkdir -p "$2" 2>/dev/null || die "cannot create $2"
dir=$(cd "$2" && pwd)
conf=$dir/etc/slurm.conf
export SLURM_CONF=$conf

# A PID from DIR/run/NAME.pid whose process is still the one we started: its command line names
# the binary and (daemons) this cluster's files, so a recycled PID is never signalled.
live_pid() { # NAME -> pid on stdout, or nothing
  local f=$dir/run/$1.pid pid
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  [ -r "/proc/$pid/cmdline" ] || return 0
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$1 .*$dir/" && echo "$pid"
  return 0
}

stop_pid() { # NAME PID: SIGTERM, up to 10 s, then SIGKILL
  local name=$1 pid=$2
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do [ -d "/proc/$pid" ] || { echo "slurm_cluster: stopped $name ($pid)"; return 0; }; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  echo "slurm_cluster: $name ($pid) did not stop in 10 s: killed" >&2
}

# slurmstepd processes of this cluster (one per job step): slurmd starts them with
# SLURM_CONF=<its slurm.conf> in their environment.
our_stepds() {
  local p
  for p in $(pgrep -x slurmstepd 2>/dev/null || true); do
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qxF "SLURM_CONF=$conf" && echo "$p"
  done
  return 0
}

descendants() { # PID: every process below it
  local c
  for c in $(pgrep -P "$1" 2>/dev/null || true); do echo "$c"; descendants "$c"; done
}

status() {
  local all=0 name pid
  for name in munged slurmctld slurmd; do
    pid=$(live_pid $name)
    if [ -n "$pid" ]; then echo "$name: running (pid $pid)"; else echo "$name: not running"; all=1; fi
  done
  if [ "$all" = 0 ]; then sinfo -N -o '%N %T %c' 2>&1 || all=1; squeue 2>&1 || true; fi
  return $all
}

down() {
  local name pid jobs p
  if [ -n "$(live_pid slurmctld)" ] && [ -n "$(live_pid slurmd)" ]; then
    jobs=$(squeue -h -o %i 2>/dev/null || true)
    if [ -n "$jobs" ]; then
      echo "slurm_cluster: cancelling jobs $(echo $jobs)"
      scancel $jobs 2>/dev/null || true
      # KillWait (SIGTERM to SIGKILL) plus the node's epilog: until no job is left
      for _ in $(seq 600); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.1; done
    fi
  fi
  for name in slurmd slurmctld; do
    pid=$(live_pid $name); [ -n "$pid" ] && stop_pid $name "$pid"
  done
  for p in $(our_stepds); do   # left when slurmctld or slurmd was gone: the step and its tasks
    kill -KILL $(descendants "$p") "$p" 2>/dev/null &&
      echo "slurm_cluster: killed a leftover slurmstepd ($p) and its processes" >&2
  done
  pid=$(live_pid munged); [ -n "$pid" ] && stop_pid munged "$pid"
  rm -f "$dir"/run/*.pid
  return 0
}

port_free() { ! ss -Htln "sport = :$1" 2>/dev/null | grep -q .; }

up() {
  local b missing=() host p0 p1 name node overrides
  for b in munged mungekey slurmctld slurmd sbatch srun scontrol sinfo squeue scancel ss; do
    command -v $b >/dev/null || missing+=("$b")
  done
  [ ${#missing[@]} = 0 ] || { echo "slurm_cluster: not installed: ${missing[*]}: run scripts/setup.sh (Debian packages slurm-wlm, munge)" >&2; exit 3; }
  [ "$(id -u)" = 0 ] || die "run as root: slurmd must (this is a test cluster; jobs run as root)"
  if [ -n "$(live_pid munged)$(live_pid slurmctld)$(live_pid slurmd)" ]; then
    die "a cluster already runs in $dir ($0 status $dir); stop it first: $0 down $dir"
  fi
  # unix socket paths are limited to 107 bytes
  [ ${#dir} -le 80 ] || die "DIR is too long for munge's socket path (${#dir} > 80 characters): $dir"
  mkdir -p "$dir"/{etc,munge,state/ctld,state/slurmd,log,run}
  chmod 700 "$dir/munge"
  host=$(hostname -s)

  # ports: the first two free ones from VF_SLURM_PORT
  p0=${VF_SLURM_PORT:-16817}
  while ! port_free "$p0"; do p0=$((p0 + 1)); done
  p1=$((p0 + 1))
  while ! port_free "$p1"; do p1=$((p1 + 1)); done
  echo "$p0 $p1" >"$dir/ports"

  # munge: its own key, socket, pid and log under DIR (no /run/munge needed), run as root
  [ -s "$dir/munge/munge.key" ] || mungekey --create --keyfile="$dir/munge/munge.key" --bits=1024 \
    || die "mungekey could not create $dir/munge/munge.key"
  chmod 600 "$dir/munge/munge.key"
  setsid munged --foreground --force --socket="$dir/munge/munge.socket" \
    --key-file="$dir/munge/munge.key" --pid-file="$dir/munge/munged.pid" \
    --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed" \
    </dev/null >>"$dir/log/munged.out" 2>&1 &
  echo $! >"$dir/run/munged.pid"
  for _ in $(seq 100); do [ -S "$dir/munge/munge.socket" ] && break; sleep 0.05; done
  munge -n --socket="$dir/munge/munge.socket" | unmunge --socket="$dir/munge/munge.socket" >/dev/null 2>&1 \
    || { tail -5 "$dir/log/munged.log" "$dir/log/munged.out" >&2 2>/dev/null; down >/dev/null; die "munged did not start (log: $dir/log/munged.log)"; }

  # the node line from slurmd -C (CPUs, sockets, cores, threads, memory), pinned to 127.0.0.1
  node=$(slurmd -C | head -1 | sed "s/^NodeName=[^ ]*/NodeName=$host NodeAddr=127.0.0.1 NodeHostname=$host/")
  overrides=""
  if [ -n "${VF_SLURM_CPUS:-}" ]; then
    [[ $VF_SLURM_CPUS =~ ^[1-9][0-9]*$ ]] || die "VF_SLURM_CPUS must be a positive integer (got '$VF_SLURM_CPUS')"
    node=$(echo "$node" | sed -E "s/CPUs=[0-9]+/CPUs=$VF_SLURM_CPUS/; s/SocketsPerBoard=[0-9]+/SocketsPerBoard=1/;
                                  s/CoresPerSocket=[0-9]+/CoresPerSocket=$VF_SLURM_CPUS/; s/ThreadsPerCore=[0-9]+/ThreadsPerCore=1/")
    overrides="SlurmdParameters=config_overrides"
  fi
  cat >"$conf" <<EOF
# Written by scripts/slurm_cluster.sh: a one-node test cluster; everything under $dir
ClusterName=vaefarmtest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$p0
SlurmdPort=$p1
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket,cred_expire=${VF_SLURM_CRED_EXPIRE:-10}
StateSaveLocation=$dir/state/ctld
SlurmdSpoolDir=$dir/state/slurmd
SlurmctldPidFile=$dir/run/slurmctld.daemon.pid
SlurmdPidFile=$dir/run/slurmd.daemon.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$dir/etc/plugstack.conf
# no cgroups: processes tracked by parentage, no binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MailProg=/bin/true
ReturnToService=2
KillWait=${VF_SLURM_KILL_WAIT:-30}
MinJobAge=600
InactiveLimit=0
$overrides
$node State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  : >"$dir/etc/plugstack.conf"
  printf 'export SLURM_CONF=%q\n' "$conf" >"$dir/env"

  # -c: a clean start, no jobs of an earlier cluster in DIR
  setsid slurmctld -D -c -i -f "$conf" </dev/null >>"$dir/log/slurmctld.out" 2>&1 &
  echo $! >"$dir/run/slurmctld.pid"
  for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.1; done
  scontrol ping 2>/dev/null | grep -q UP \
    || { tail -5 "$dir/log/slurmctld.log" "$dir/log/slurmctld.out" >&2 2>/dev/null; down >/dev/null; die "slurmctld did not answer in 10 s (log: $dir/log/slurmctld.log)"; }
  setsid slurmd -D -f "$conf" -N "$host" </dev/null >>"$dir/log/slurmd.out" 2>&1 &
  echo $! >"$dir/run/slurmd.pid"
  for _ in $(seq 150); do
    case $(sinfo -h -n "$host" -o %T 2>/dev/null) in idle) break ;; esac; sleep 0.1
  done
  if [ "$(sinfo -h -n "$host" -o %T 2>/dev/null)" != idle ]; then
    tail -5 "$dir/log/slurmd.log" "$dir/log/slurmd.out" >&2 2>/dev/null
    down >/dev/null
    die "node $host is not idle after 15 s (log: $dir/log/slurmd.log)"
  fi
  echo "slurm_cluster: up in $dir (ports $p0, $p1; node $host): . $dir/env"
}

case $cmd in
  up) up ;;
  down) down ;;
  status) status ;;
esac
