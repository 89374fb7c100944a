#!/usr/bin/env bash
# Stop the single-node SLURM cluster that cluster/slurm-up.sh started.
#
# Cancels the jobs left in the queue, then stops exactly the PIDs recorded in the state file
# ($DELTASPACE_SLURM_STATE, default /run/deltaspace-slurm/pids), in reverse start order:
# SIGTERM, wait up to $DELTASPACE_SLURM_STOP_TIMEOUT seconds (default 30), then SIGKILL. A PID
# is only signalled while it still runs the program recorded for it, so a reused PID is never hit.
# Removes the state file at the end; running it again (or with no state file) does nothing.
set -euo pipefail

STATE=${DELTASPACE_SLURM_STATE:-/run/deltaspace-slurm/pids}
TIMEOUT=${DELTASPACE_SLURM_STOP_TIMEOUT:-30}

log() { echo "slurm-down: $*"; }
# alive NAME PID: PID runs program NAME and is not a zombie (PID 1 here reaps them late).
alive() { [[ $(cat "/proc/$2/comm" 2>/dev/null) == "$1" ]] && ! grep -q '^State:.*Z' "/proc/$2/status" 2>/dev/null; }

if [[ ! -e $STATE ]]; then
    log "no state file $STATE: nothing to stop"
    exit 0
fi

# Cancel the jobs still queued or running first: their slurmstepd runs apart from slurmd and
# would outlive it, with the job's processes.
ctld_pid=$(awk '$1 == "slurmctld" {print $2}' "$STATE")
if alive slurmctld "$ctld_pid" && [[ -n $(squeue -h -o %i 2>/dev/null) ]]; then
    log "cancelling jobs $(squeue -h -o %i | tr '\n' ' ')"
    squeue -h -o %i | xargs scancel || true
    deadline=$((SECONDS + TIMEOUT))
    while [[ -n $(squeue -h -o %i 2>/dev/null) ]] && ((SECONDS < deadline)); do sleep 0.5; done
fi

# Reverse order: slurmd, slurmctld, slurmdbd, mariadbd, munged.
tac "$STATE" | while read -r name pid; do
    [[ -n ${pid:-} ]] || continue
    if ! alive "$name" "$pid"; then
        log "$name (PID $pid) is not running"
        continue
    fi
    log "stopping $name (PID $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + TIMEOUT))
    while alive "$name" "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
    if alive "$name" "$pid"; then
        log "$name (PID $pid) still running after ${TIMEOUT}s: sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for _ in {1..50}; do alive "$name" "$pid" || break; sleep 0.1; done
    fi
done

# A stopped daemon stays a zombie until PID 1 reaps it (here within a few seconds): wait up
# to 5 s for the entries to go, so that `ps` right after this script shows none of them.
for _ in {1..25}; do
    left=no
    while read -r _ pid; do if [[ -d /proc/${pid:-x} ]]; then left=yes; fi; done <"$STATE"
    [[ $left == no ]] && break
    sleep 0.2
done

rm -f "$STATE"
log "stopped; removed $STATE"
