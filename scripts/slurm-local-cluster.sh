#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for trying the SLURM profile and the sbatch wrapper.
#
#   scripts/slurm-local-cluster.sh start [DIR]   # prints the `export SLURM_CONF=...` line to use
#   scripts/slurm-local-cluster.sh stop  [DIR]
#
# Needs Debian's (or Ubuntu's) slurm-wlm and munge packages and root, since slurmd runs jobs as
# their users:   sudo apt-get install slurm-wlm munge
# No systemd needed: munged, slurmctld and slurmd are started by hand, with their configuration,
# state, logs and pid files all in DIR (default: /tmp/specimen-slurm), munge's key and socket of
# their own, and ports picked free. The one thing outside DIR is the link /etc/slurm/slurm.conf
# (see below why), made only where no real configuration is, and removed by `stop`; so one such
# cluster at a time on a machine.
#
# Accounting storage is off (no slurmdbd), so `sacct` cannot see jobs: Snakemake's SLURM executor
# must be told `--slurm-status-command squeue`; MinJobAge=3600 keeps finished jobs visible to squeue
# for an hour: longer than a whole demo DAG (7 min beside the rest of the test suite), so that a test
# still sees its first job when the last ends, and well over the executor's status-check interval.
set -euo pipefail

die() { echo "slurm-local-cluster: $*" >&2; exit 1; }

action=${1:-}
dir=${2:-/tmp/specimen-slurm}
case "$action" in start|stop) ;; *) die "usage: $0 start|stop [DIR]" ;; esac

if [ "$action" = stop ]; then
    for daemon in slurmd slurmctld munged; do
        if [ -f "$dir/$daemon.pid" ]; then
            kill "$(cat "$dir/$daemon.pid")" 2>/dev/null || true
        fi
    done
    # slurmd and slurmctld take a moment to write their state; wait so DIR can be removed safely
    for _ in $(seq 50); do
        alive=0
        for daemon in slurmd slurmctld munged; do
            [ -f "$dir/$daemon.pid" ] && kill -0 "$(cat "$dir/$daemon.pid")" 2>/dev/null && alive=1
        done
        [ $alive = 0 ] && break
        sleep 0.2
    done
    if [ "$(readlink /etc/slurm/slurm.conf 2>/dev/null)" = "$(cd "$dir" 2>/dev/null && pwd)/slurm.conf" ]; then
        rm -f /etc/slurm/slurm.conf
    fi
    echo "stopped the cluster in $dir"
    exit 0
fi

[ "$(id -u)" = 0 ] || die "run it as root (slurmd starts jobs as their users): sudo $0 start $dir"
for tool in munged slurmctld slurmd sbatch; do
    command -v "$tool" >/dev/null || die "$tool not found: sudo apt-get install slurm-wlm munge"
done

mkdir -p "$dir"/{state,spool,munge}
dir=$(cd "$dir" && pwd)
chmod 700 "$dir/munge"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# munge: a key of our own and a socket in DIR, so a system munged (if any) is left alone
[ -f "$dir/munge/munge.key" ] || dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$dir/munge/munge.key"
munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
       --pid-file="$dir/munged.pid" --log-file="$dir/munged.log" --seed-file="$dir/munge/munge.seed"

cpus=$(nproc)
# GPUs: the real ones when /dev/nvidia* exist; otherwise one pretend GPU (File=/dev/null), so jobs
# that ask for --gpus=1 (the profile's train rule, the sbatch wrapper) are scheduled as on a GPU
# node: SLURM hands them CUDA_VISIBLE_DEVICES=0, and TensorFlow, finding no device, runs on the CPU.
shopt -s nullglob
devices=(/dev/nvidia[0-9]*)
shopt -u nullglob
if [ ${#devices[@]} -gt 0 ]; then
    gpus=${#devices[@]}
    printf 'NodeName=node1 Name=gpu File=%s\n' "${devices[@]}" >"$dir/gres.conf"
else
    gpus=1
    echo "NodeName=node1 Name=gpu File=/dev/null" >"$dir/gres.conf"
fi
mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
cat >"$dir/slurm.conf" <<EOF
ClusterName=specimen
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
GresTypes=gpu
MinJobAge=3600
ReturnToService=2
SlurmdTimeout=60
NodeName=node1 NodeHostname=$(hostname) NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb Gres=gpu:$gpus State=UNKNOWN
PartitionName=main Nodes=node1 Default=YES MaxTime=INFINITE State=UP
EOF

export SLURM_CONF="$dir/slurm.conf"
# Commands find the cluster through SLURM_CONF, but Snakemake's job step (slurm-jobstep) removes
# every SLURM_* variable before its srun; so the default path points here too, unless it holds a
# real cluster's configuration.
if [ -e /etc/slurm/slurm.conf ] && [ ! -L /etc/slurm/slurm.conf ]; then
    die "/etc/slurm/slurm.conf exists: this machine is part of a real cluster, so use that one"
fi
mkdir -p /etc/slurm
ln -sfn "$SLURM_CONF" /etc/slurm/slurm.conf
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF" -N node1

for _ in $(seq 100); do
    if sinfo -h -N -o '%t' 2>/dev/null | grep -qx idle; then
        echo "a one-node cluster runs in $dir ($cpus CPUs, $mem_mb MB, $gpus GPU); to use it:"
        echo "export SLURM_CONF=$SLURM_CONF"
        exit 0
    fi
    sleep 0.2
done
die "the node did not come up within 20 s; see $dir/slurmctld.log and $dir/slurmd.log"
