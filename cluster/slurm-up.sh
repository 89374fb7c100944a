#!/usr/bin/env bash
# Start a single-node SLURM cluster (with accounting) on this machine, without systemd.
#
#   cluster/slurm-up.sh      # installs packages if missing, configures, starts, prints sinfo
#   cluster/slurm-down.sh    # stops exactly what this script started
#
# Daemons, in start order: munged, mariadbd, slurmdbd, slurmctld, slurmd (node "localhost",
# partition "debug"). Every PID started is recorded, one "name pid" line each, in the state
# file $DELTASPACE_SLURM_STATE (default /run/deltaspace-slurm/pids). Each daemon runs in
# foreground mode in a session of its own, so the PID recorded is the daemon's; what it prints
# (its log, for this run) goes to <name>.out beside the state file.
# Idempotent: when the recorded daemons are alive and the node answers it only says so. If a
# daemon does not get ready within $DELTASPACE_SLURM_TIMEOUT s (default 60) it names it, shows
# its log and stops what it had started. Needs root, Debian 12 packages, no systemd.
set -euo pipefail

STATE=${DELTASPACE_SLURM_STATE:-/run/deltaspace-slurm/pids}
TIMEOUT=${DELTASPACE_SLURM_TIMEOUT:-60}    # seconds to wait for each daemon
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PACKAGES=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server)

log() { echo "slurm-up: $*"; }

# ---- already up? -------------------------------------------------------------------------
# alive NAME PID: PID runs program NAME and is not a zombie (PID 1 here reaps them late).
alive() { [[ $(cat "/proc/$2/comm" 2>/dev/null) == "$1" ]] && ! grep -q '^State:.*Z' "/proc/$2/status" 2>/dev/null; }
# node_ready: the node answers (jobs left from before a restart can keep it mixed/allocated).
node_ready() { [[ $(sinfo -h -o %T 2>/dev/null) =~ ^(idle|mixed|allocated)$ ]]; }
if [[ -s $STATE ]]; then
    up=yes
    while read -r name pid; do alive "$name" "$pid" || up=no; done <"$STATE"
    if [[ $up == yes ]] && node_ready; then
        log "cluster already up (state file $STATE)"
        sinfo
        exit 0
    fi
    log "stale or partial state in $STATE: stopping what is left, then starting afresh"
    "$HERE/slurm-down.sh"
fi

# ---- packages ----------------------------------------------------------------------------
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    # Keep the packages' maintainer scripts from starting daemons themselves (we start them
    # below and must know every PID): policy-rc.d "exit 101" forbids it, as Docker images do.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
    log "packages installed in ${SECONDS}s"
fi
t_start=$SECONDS

# ---- configuration -----------------------------------------------------------------------
cpus=$(nproc)
mem_mb=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.8}' /proc/meminfo)
db_pass=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')   # new each start; set in the DB below

mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm \
    /run/munge /run/mysqld "$(dirname "$STATE")"
chown slurm:slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm
chown munge:munge /run/munge
chown mysql:mysql /run/mysqld

cat >/etc/slurm/slurm.conf <<EOF
# Written by deltaspace cluster/slurm-up.sh: one node, accounting through slurmdbd.
ClusterName=ci
SlurmctldHost=localhost
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
MinJobAge=600
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/linux
NodeName=localhost CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF

install -m 600 -o slurm -g slurm /dev/null /etc/slurm/slurmdbd.conf
cat >/etc/slurm/slurmdbd.conf <<EOF
# Written by deltaspace cluster/slurm-up.sh.
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurm/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$db_pass
StorageLoc=slurm_acct_db
EOF

# ---- helpers -----------------------------------------------------------------------------
OUT_DIR=$(dirname "$STATE")     # <daemon>.out: what each daemon printed
: >"$STATE"
current="" current_pid=""       # the daemon being started
fail() {
    log "ERROR: $current failed: $*"
    log "last lines of $OUT_DIR/$current.out:"
    tail -n 20 "$OUT_DIR/$current.out" || true
    log "stopping the daemons started so far"
    "$HERE/slurm-down.sh" || true
    exit 1
}
# launch NAME COMMAND...: start a daemon that stays in the foreground, in a session of its
# own (the caller's Ctrl-C or process-group kill must not reach it), and record its PID at
# once: setsid execs without forking here, so $! is the daemon itself.
launch() {
    current=$1; shift
    log "starting $current"
    setsid "$@" </dev/null >"$OUT_DIR/$current.out" 2>&1 &
    current_pid=$!
    echo "$current $current_pid" >>"$STATE"
}
# wait_for WHAT COMMAND...: retry COMMAND quietly every 0.5 s until it succeeds; fail at once
# if the daemon died, or after $TIMEOUT seconds.
wait_for() {
    local what=$1 deadline=$((SECONDS + TIMEOUT)); shift
    until "$@" >/dev/null 2>&1; do
        grep -qs '^State:.[^Z]' "/proc/$current_pid/status" || fail "it exited before $what"
        ((SECONDS < deadline)) || fail "no $what within ${TIMEOUT}s"
        sleep 0.5
    done
}

# ---- start, in order ---------------------------------------------------------------------
[[ -s /etc/munge/munge.key ]] || runuser -u munge -- mungekey --create
launch munged setpriv --reuid=munge --regid=munge --clear-groups munged --foreground
wait_for "munge credential round trip" sh -c 'munge -n | unmunge'

[[ -d /var/lib/mysql/mysql ]] || mariadb-install-db --user=mysql >/dev/null
launch mariadbd mariadbd --user=mysql --bind-address=127.0.0.1
wait_for "answer to mariadb-admin ping" mariadb-admin ping
mariadb <<EOF || fail "could not create the accounting database"
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$db_pass';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
EOF

launch slurmdbd slurmdbd -D
wait_for "answer to sacctmgr show cluster" sacctmgr -n show cluster

launch slurmctld slurmctld -D
wait_for "UP from scontrol ping" sh -c 'scontrol ping | grep -q UP'

launch slurmd slurmd -D -N localhost    # -N: whatever the hostname
wait_for "node up in sinfo" node_ready

log "cluster up in $((SECONDS - t_start))s; PIDs in $STATE"
sinfo
