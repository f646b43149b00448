#!/usr/bin/env bash
# A throw-away single-node SLURM cluster on localhost for testing the workflow's SLURM profile.
#
#   tests/slurm/cluster.sh up       install slurm-wlm + munge if missing, write configs, start
#                                   munged, slurmctld and slurmd, wait until the node is idle
#   tests/slurm/cluster.sh status   show daemons, node and partitions
#   tests/slurm/cluster.sh down     cancel jobs, stop every daemon by its recorded PID
#   tests/slurm/cluster.sh logs     print the daemon logs
#
# Everything lives in one state folder ($RS5M_SLURM_STATE, default /tmp/rs5m-slurm): configs,
# munge key and socket, spool folders, logs and PID files. /etc/slurm/slurm.conf and gres.conf
# are symlinks to its configs while the cluster is up: the plugin's job step drops SLURM_CONF
# from the environment before it calls `srun`, so jobs only find a config at the default path.
# `up` refuses to replace an /etc/slurm/slurm.conf that is not its own link; `down` removes the
# links. Clients may also `source "$RS5M_SLURM_STATE/env"` (sets SLURM_CONF).
#
# Job status: no slurmdbd. The profile queries status with `squeue --states=all`
# (`slurm-status-command: squeue`), which sees finished jobs for MinJobAge seconds; MinJobAge is
# one hour here, so squeue and `scontrol show job` keep every job of a test run. This saves the
# MariaDB install and start, one more daemon to fail, and keeps bring-up under a few seconds.
#
# The node is declared with a compute node's shape (RS5M_SLURM_CPUS, default 16;
# RS5M_SLURM_MEM_MB, default 65536) whatever the host has: `SlurmdParameters=config_overrides`
# makes slurmd accept it, so the profile's real thread and memory requests can be submitted and
# checked on a small CI machine (nothing enforces them: no cgroups). Two fake GPUs (/dev/null,
# /dev/zero) make the `gpu` partition schedulable.
#
# Must run as root (the daemons do). Needs apt-get only if slurm-wlm or munge is missing.
set -Eeuo pipefail

STATE="${RS5M_SLURM_STATE:-/tmp/rs5m-slurm}"
CPUS="${RS5M_SLURM_CPUS:-16}"
MEM_MB="${RS5M_SLURM_MEM_MB:-65536}"
CTLD_PORT="${RS5M_SLURM_PORT:-6817}"
SLURMD_PORT="$((CTLD_PORT + 1))"
IDLE_TIMEOUT="${RS5M_SLURM_TIMEOUT:-60}"
NODE=localhost
CONF="$STATE/etc/slurm.conf"
SYS_CONF_DIR=/etc/slurm

log() { echo "[cluster.sh] $*" >&2; }

print_logs() {
    local f
    for f in "$STATE"/log/*.log "$STATE"/munge/*.log; do
        [ -f "$f" ] || continue
        echo "===== $f (last 80 lines) =====" >&2
        tail -n 80 "$f" >&2
    done
}

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
        && command -v munged >/dev/null && command -v mungekey >/dev/null \
        && command -v sbatch >/dev/null; then
        return
    fi
    log "installing slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    # The lock timeout lets a parallel apt run (another job on the machine) finish first.
    apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
        slurm-wlm munge >/dev/null
}

write_configs() {
    mkdir -p "$STATE"/{etc,log,run,spool/slurmctld,spool/slurmd}
    mkdir -p "$STATE/munge"
    chown munge:munge "$STATE/munge"
    chmod 0755 "$STATE/munge"

    cat >"$CONF" <<EOF
# Written by tests/slurm/cluster.sh: a single-node test cluster on localhost.
ClusterName=rs5mtest
SlurmctldHost=$NODE
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$STATE/munge/munge.socket.2
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
# Jobs that give no --mem get 1 GB a CPU, not the whole node.
DefMemPerCPU=1024
StateSaveLocation=$STATE/spool/slurmctld
SlurmdSpoolDir=$STATE/spool/slurmd
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# Finished jobs stay visible to squeue/scontrol for an hour: the status checks and the test's
# job records rely on it.
MinJobAge=3600
KillWait=5
InactiveLimit=0
SlurmdTimeout=300
GresTypes=gpu
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB Gres=gpu:2 State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$NODE MaxTime=INFINITE State=UP
EOF
    # A count-only gres line makes the node INVAL: each fake GPU needs a device file.
    cat >"$STATE/etc/gres.conf" <<EOF
NodeName=$NODE Name=gpu File=/dev/null
NodeName=$NODE Name=gpu File=/dev/zero
EOF
    cat >"$STATE/env" <<EOF
export SLURM_CONF=$CONF
EOF
}

# A link left by a test cluster (of any state folder) whose slurmctld no longer runs.
stale_link() {
    local link="$1" other pidfile
    [ -L "$link" ] || return 1
    other="$(readlink "$link")"
    [ "$other" = "$STATE/etc/$(basename "$link")" ] && return 0
    head -n1 "$other" 2>/dev/null | grep -q "Written by tests/slurm/cluster.sh" || return 1
    pidfile="$(dirname "$(dirname "$other")")/run/slurmctld.pid.rs5m"
    ! { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
}

link_system_configs() {
    local name target
    mkdir -p "$SYS_CONF_DIR"
    for name in slurm.conf gres.conf; do
        target="$SYS_CONF_DIR/$name"
        if [ -e "$target" ] && ! stale_link "$target"; then
            log "$target exists and is not a stale link of a test cluster; not replacing it"
            return 1
        fi
        ln -sfn "$STATE/etc/$name" "$target"
    done
}

unlink_system_configs() {
    local name target
    for name in slurm.conf gres.conf; do
        target="$SYS_CONF_DIR/$name"
        if [ -L "$target" ] && [ "$(readlink "$target")" = "$STATE/etc/$name" ]; then
            rm -f "$target"
        fi
    done
}

# Start a daemon in the foreground, in the background of this shell, and record its PID.
start_daemon() {
    local name="$1"
    shift
    "$@" >>"$STATE/log/$name.stdout.log" 2>&1 &
    echo $! >"$STATE/run/$name.pid.rs5m"
    log "started $name (pid $!)"
}

alive() {
    local pidfile="$STATE/run/$1.pid.rs5m"
    [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

# wait_for DAEMON WHAT TIMEOUT COMMAND...: wait until COMMAND succeeds; give up early if DAEMON died.
wait_for() {
    local daemon="$1" what="$2" timeout="$3"
    shift 3
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        if ! alive "$daemon"; then
            log "$daemon exited while waiting for $what"
            return 1
        fi
        if ((SECONDS >= deadline)); then
            log "timed out after ${timeout}s waiting for $what"
            return 1
        fi
        sleep 0.2
    done
}

node_idle() {
    [ "$(sinfo -h -n "$NODE" -o %t 2>/dev/null | head -n1)" = idle ]
}

up() {
    if alive slurmctld || alive slurmd || alive munged; then
        log "a cluster is already running in $STATE; run '$0 down' first"
        return 1
    fi
    # Only a folder this script wrote (or an empty one) is wiped and reused.
    if [ -n "$(ls -A "$STATE" 2>/dev/null)" ] \
        && ! head -n1 "$CONF" 2>/dev/null | grep -q "Written by tests/slurm/cluster.sh"; then
        log "$STATE is not empty and not a test cluster's state folder; not touching it"
        return 1
    fi
    install_packages
    rm -rf "$STATE"
    mkdir -p "$STATE"
    chmod 0755 "$STATE"
    write_configs
    export SLURM_CONF="$CONF"

    # Any failure from here on stops what was started and shows why.
    trap 'rc=$?; log "bring-up failed"; print_logs; down; exit $rc' ERR
    link_system_configs

    if ! setpriv --reuid=munge --regid=munge --init-groups test -x "$STATE/munge"; then
        log "user munge cannot reach $STATE (every parent folder needs o+x); choose RS5M_SLURM_STATE elsewhere"
        false
    fi
    mungekey --create --keyfile="$STATE/munge/munge.key"
    chown munge:munge "$STATE/munge/munge.key"
    chmod 0400 "$STATE/munge/munge.key"
    start_daemon munged setpriv --reuid=munge --regid=munge --init-groups munged --foreground \
        --key-file="$STATE/munge/munge.key" --socket="$STATE/munge/munge.socket.2" \
        --pid-file="$STATE/munge/munged.pid" --log-file="$STATE/munge/munged.log" \
        --seed-file="$STATE/munge/munged.seed"
    wait_for munged munged 20 bash -c "munge -n -S '$STATE/munge/munge.socket.2' | unmunge -S '$STATE/munge/munge.socket.2'"

    start_daemon slurmctld slurmctld -D -i -f "$CONF"
    wait_for slurmctld slurmctld 30 scontrol ping
    start_daemon slurmd slurmd -D -N "$NODE" -f "$CONF"
    wait_for slurmd "node $NODE to be idle" "$IDLE_TIMEOUT" node_idle
    trap - ERR
    log "cluster up: $(sinfo -h -o '%P %t %c %m %G' | tr '\n' ';')"
    log "clients: source $STATE/env  (SLURM_CONF=$CONF)"
}

stop_pid() {
    local name="$1" pidfile="$STATE/run/$1.pid.rs5m" pid
    [ -f "$pidfile" ] || return 0
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name (pid $pid) ignored TERM; killing"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        log "stopped $name (pid $pid)"
    fi
    rm -f "$pidfile"
}

# PIDs of the slurmstepd processes of this cluster's jobs: they outlive slurmd if left alone.
stepd_pids() {
    local p
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/exe" 2>/dev/null)" = /usr/sbin/slurmstepd ] || continue
        tr '\0' '\n' <"$p/environ" 2>/dev/null | grep -qx "SLURM_CONF=$CONF" \
            && echo "${p#/proc/}"
    done
    return 0
}

down() {
    export SLURM_CONF="$CONF"
    if alive slurmctld; then
        # Cancel jobs first so slurmd and slurmstepd end their processes cleanly.
        scancel --quiet --full --user="$(id -un)" 2>/dev/null || true
        for _ in $(seq 25); do
            [ -z "$(squeue -h -t running,completing,pending 2>/dev/null)" ] && break
            sleep 0.2
        done
    fi
    stop_pid slurmd
    stop_pid slurmctld
    local pid
    for pid in $(stepd_pids); do
        log "killing leftover slurmstepd (pid $pid)"
        kill -KILL "$pid" 2>/dev/null || true
    done
    stop_pid munged
    unlink_system_configs
}

status() {
    export SLURM_CONF="$CONF"
    local name rc=0
    for name in munged slurmctld slurmd; do
        if alive "$name"; then
            echo "$name: running (pid $(cat "$STATE/run/$name.pid.rs5m"))"
        else
            echo "$name: not running"
            rc=1
        fi
    done
    if alive slurmctld; then
        sinfo -o '%P %a %t %c %m %G' || rc=1
        squeue --states=all -o '%i %P %j %T %C %m %b %k' | tail -n 20 || true
    fi
    return $rc
}

case "${1:-}" in
up) up ;;
down) down ;;
status) status ;;
logs) print_logs ;;
*)
    echo "usage: $0 up|down|status|logs  (state folder: $STATE)" >&2
    exit 2
    ;;
esac
