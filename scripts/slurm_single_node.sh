#!/usr/bin/env bash
# Start (or stop) a throw-away single-node SLURM cluster on this machine, for the `cluster` tests:
#   sudo apt-get install -y slurm-wlm munge     # Debian/Ubuntu packages
#   scripts/slurm_single_node.sh start [STATE_DIR]   # prints `export SLURM_CONF=...`
#   scripts/slurm_single_node.sh stop  [STATE_DIR]
# Runs munged, slurmctld and slurmd as the current user (root in a container) with no cgroups
# (proctrack/linuxproc), one partition `debug` holding this host's CPUs.
set -euo pipefail
cmd=${1:-start}
dir=$(realpath -m "${2:-/tmp/peftbench-slurm}")
host=$(hostname -s)
if [ "$cmd" = stop ]; then
  # let finishing jobs end first (a job step whose slurmd goes away lingers)
  for _ in $(seq 30); do
    [ -n "$(SLURM_CONF=$dir/slurm.conf squeue -h 2>/dev/null)" ] || break
    sleep 1
  done
  for p in slurmd slurmctld munged; do
    [ -f "$dir/$p.pid" ] && kill "$(cat "$dir/$p.pid")" 2>/dev/null || true
  done
  exit 0
fi
mkdir -p "$dir"/{spool,state,munge,log}
chmod 700 "$dir/munge"
cpus=$(nproc)
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
user=$(id -un)
[ -f "$dir/munge/munge.key" ] || { dd if=/dev/urandom bs=1 count=1024 of="$dir/munge/munge.key" 2>/dev/null; chmod 400 "$dir/munge/munge.key"; }
cat > "$dir/slurm.conf" <<CONF
ClusterName=peftbench
SlurmctldHost=$host
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldPort=26817
SlurmdPort=26818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
echo "" > "$dir/cgroup.conf"
munged --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
  --pid-file="$dir/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/seed" --force
export SLURM_CONF=$dir/slurm.conf
slurmctld -i
slurmd
for _ in $(seq 30); do
  sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)' && { echo "export SLURM_CONF=$SLURM_CONF"; exit 0; }
  sleep 1
done
echo "slurm did not come up; logs in $dir/log" >&2
exit 1
