#!/usr/bin/env bash
# Stop the single-node SLURM cluster that cluster/slurm-up.sh started.
#
# Cancels the jobs left in the queue, then stops exactly the PIDs recorded in the state file
# ($DELTASPACE_SLURM_STATE, default /run/deltaspace-slurm/pids), in reverse start order:
# SIGTERM, wait up to $DELTASPACE_SLURM_STOP_TIMEOUT seconds (default 30), then SIGKILL. A PID
# is only signalled while it still runs the program recorded for it, so a reused PID is never hit.
# Removes the state file at the end; running it again (or with no state file) stops nothing.
# Either way it leaves slurm.conf with MessageTimeout=1 (see quick_timeout below).
set -euo pipefail

STATE=${DELTASPACE_SLURM_STATE:-/run/deltaspace-slurm/pids}
TIMEOUT=${DELTASPACE_SLURM_STOP_TIMEOUT:-30}

log() { echo "slurm-down: $*"; }
# alive NAME PID: PID runs program NAME and is not a zombie (PID 1 here reaps them late).
alive() { [[ $(cat "/proc/$2/comm" 2>/dev/null) == "$1" ]] && ! grep -q '^State:.*Z' "/proc/$2/status" 2>/dev/null; }

CONF=/etc/slurm/slurm.conf     # as slurm-up.sh writes it

# quick_timeout: make the stopped cluster answer at once. Every Snakemake start imports
# snakemake-executor-plugin-slurm (installed with the project), which runs `scontrol show config`
# at import, even for local runs; with no slurmctld, scontrol waits MessageTimeout (default 10 s)
# for it, so every `snakemake` command, a dry run or a no-op rerun included, took ~9 s more. With
# MessageTimeout=1 it gives up at once. Only our own file is edited (slurm-up.sh's header line),
# and slurm-up.sh rewrites the whole file at start, so a running cluster keeps the default.
quick_timeout() {
    [[ -w $CONF ]] && head -n 1 "$CONF" | grep -q '^# Written by deltaspace cluster/slurm-up.sh' || return 0
    sed -i -e '/^[[:space:]]*MessageTimeout[[:space:]]*=/Id' -e '/^# slurm-down.sh: stopped/d' "$CONF"
    printf '# slurm-down.sh: stopped, so scontrol fails at once\nMessageTimeout=1\n' >>"$CONF"
    log "set MessageTimeout=1 in $CONF (the cluster is stopped)"
}

if [[ ! -e $STATE ]]; then
    log "no state file $STATE: nothing to stop"
    quick_timeout
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
quick_timeout
