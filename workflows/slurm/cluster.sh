#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for trying (and testing) lmem's cluster path without a cluster.
#
#   workflows/slurm/cluster.sh up       install what is missing (Debian packages, as root), then start munge,
#                                       MariaDB, slurmdbd, slurmctld and slurmd; prints the cluster's state
#   workflows/slurm/cluster.sh down     stop exactly the daemons `up` started (by their recorded PIDs)
#   workflows/slurm/cluster.sh status   which of them run
#
# Both are idempotent: `up` on a running cluster starts only what is not running, `down` on a stopped one does
# nothing. Everything the cluster writes (configuration, database, spool, logs, PIDs) lives under $LMEM_SLURM_DIR
# (default /tmp/lmem-slurm); /run/munge and /run/mysqld are made for the daemons' sockets, and
# /etc/slurm/slurm.conf is a link to the configuration while the cluster is up (never over a real one).
#
# No systemd and no cgroups are assumed (containers, CI machines): each daemon runs in the foreground in the
# background, processes are tracked by /proc (proctrack/linuxproc, task/none), accounting goes to slurmdbd on a
# local MariaDB (snakemake-executor-plugin-slurm asks `sacct` for job states and `sacctmgr` for the account).
# One node with this machine's CPUs and its memory less a margin, one partition `cpu`, account `lmem` for the
# user who runs `up`. Needs root (daemons, packages). Not for production: no TLS, no users but the caller.
set -euo pipefail

PATH=$PATH:/usr/sbin   # the daemons live there; a non-login root shell may not have it
DIR=${LMEM_SLURM_DIR:-/tmp/lmem-slurm}
CLUSTER=lmem
ACCOUNT=lmem
PARTITION=cpu
MEM_MARGIN_MB=${LMEM_SLURM_MEM_MARGIN_MB:-1024}
PACKAGES=(slurm-wlm slurmdbd munge mariadb-server)
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)   # start order; `down` stops them in reverse

log() { echo "[slurm-cluster] $*" >&2; }
die() { log "error: $*"; exit 1; }

running() {  # running NAME: its recorded PID is alive
    local pid
    [[ -f "$DIR/pids/$1" ]] || return 1
    pid=$(<"$DIR/pids/$1")
    kill -0 "$pid" 2>/dev/null
}

wait_for() {  # wait_for NAME SECONDS COMMAND...: poll COMMAND until it succeeds, while daemon NAME runs
    local what=$1 limit=$2; shift 2
    for _ in $(seq $((limit * 5))); do
        "$@" >/dev/null 2>&1 && return 0
        running "$what" || die "$what exited; see $DIR/log/$what.log"
        sleep 0.2
    done
    die "$what did not come up within ${limit}s; see $DIR/log/"
}

start() {  # start NAME COMMAND...: run COMMAND in the background, record its PID (skipped when running)
    local name=$1; shift
    if running "$name"; then log "$name already running (pid $(<"$DIR/pids/$name"))"; return 0; fi
    "$@" >"$DIR/log/$name.log" 2>&1 &
    echo $! >"$DIR/pids/$name"
    log "$name started (pid $!)"
}

install_packages() {
    local missing=()
    for cmd in sbatch slurmctld slurmd slurmdbd munged mariadbd; do
        command -v "$cmd" >/dev/null || missing+=("$cmd")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    [[ $EUID -eq 0 ]] || die "missing ${missing[*]}; install ${PACKAGES[*]} (as root), or run this as root"
    log "installing ${PACKAGES[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${PACKAGES[@]}" >"$DIR/log/apt.log" 2>&1 \
        || die "apt-get install ${PACKAGES[*]} failed; see $DIR/log/apt.log"
}

write_config() {
    local host node real mem user
    host=$(hostname -s)
    # slurmd -C: this machine's node line (CPUs, sockets, cores, threads, RealMemory)
    node=$(slurmd -C | head -1)
    real=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
    mem=$((real - MEM_MARGIN_MB))
    node=$(sed -e "s/^NodeName=[^ ]*/NodeName=$host/" -e "s/RealMemory=[0-9]*/RealMemory=$mem/" <<<"$node")
    user=$(id -un)
    mkdir -p "$DIR/etc" "$DIR/state" "$DIR/spool"
    cat >"$DIR/etc/slurm.conf" <<EOF
# written by workflows/slurm/cluster.sh
ClusterName=$CLUSTER
SlurmctldHost=$host
SlurmUser=$user
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.file.log
SlurmdLogFile=$DIR/log/slurmd.file.log
# no cgroups here: processes tracked through /proc, no task containment, no per-job usage sampling
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageEnforce=associations
# job comments in the accounting database: the plugin puts each job's rule and wildcards there (sacct -o Comment)
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none
MailProg=/bin/true
ReturnToService=2
# finished jobs stay visible to squeue a while (the plugin's optional squeue status command needs it)
MinJobAge=300
SchedulerType=sched/backfill
# a job's processes run at the niceness of the sbatch that submitted it (the test suite submits its slice at 19)
PropagatePrioProcess=1
$node State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    cat >"$DIR/etc/slurmdbd.conf" <<EOF
# written by workflows/slurm/cluster.sh
AuthType=auth/munge
DbdHost=localhost
SlurmUser=$user
PidFile=$DIR/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.file.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$DIR/etc/slurmdbd.conf"
    # the clients inside a job read the default path: snakemake-executor-plugin-slurm's job step removes every
    # SLURM_* variable (SLURM_CONF too) before its srun, so a cluster known only through $SLURM_CONF fails there
    if [[ -e /etc/slurm/slurm.conf && ! -L /etc/slurm/slurm.conf ]] \
        || [[ -L /etc/slurm/slurm.conf && $(readlink /etc/slurm/slurm.conf) != "$DIR/etc/slurm.conf" ]]; then
        die "/etc/slurm/slurm.conf exists and is not this cluster's; this script does not replace a real cluster's"
    fi
    mkdir -p /etc/slurm && ln -sfn "$DIR/etc/slurm.conf" /etc/slurm/slurm.conf
}

up() {
    mkdir -p "$DIR/log" "$DIR/pids"
    install_packages
    write_config
    export SLURM_CONF=$DIR/etc/slurm.conf
    # munge: the packaged key, or a new one
    mkdir -p /run/munge && chown munge:munge /run/munge && chmod 755 /run/munge
    [[ -s /etc/munge/munge.key ]] || { mungekey --create --force; chown munge:munge /etc/munge/munge.key; }
    start munged setpriv --reuid=munge --regid=munge --init-groups munged --foreground
    wait_for munged 20 munge -n
    # MariaDB on its Unix socket only (slurmdbd connects as root through the socket's uid check)
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    if [[ ! -d "$DIR/mysql/mysql" ]]; then
        mkdir -p "$DIR/mysql" && chown mysql:mysql "$DIR/mysql"
        mysql_install_db --user=mysql --datadir="$DIR/mysql" --auth-root-authentication-method=socket \
            >"$DIR/log/mysql_install_db.log" 2>&1 || die "mysql_install_db failed; see $DIR/log/mysql_install_db.log"
    fi
    start mariadbd mariadbd --user=mysql --datadir="$DIR/mysql" --skip-networking \
        --socket=/run/mysqld/mysqld.sock --pid-file=/run/mysqld/mariadbd.pid
    wait_for mariadbd 60 mariadb -e "select 1"
    start slurmdbd slurmdbd -D   # reads slurmdbd.conf beside $SLURM_CONF
    wait_for slurmdbd 60 sacctmgr -n list cluster
    # the cluster, an account and the caller in it, before slurmctld registers
    sacctmgr -i -Q add cluster "$CLUSTER" >/dev/null 2>&1 || true
    sacctmgr -i -Q add account "$ACCOUNT" Cluster="$CLUSTER" Description=lmem Organization=lmem >/dev/null 2>&1 || true
    sacctmgr -i -Q add user "$(id -un)" Account="$ACCOUNT" Cluster="$CLUSTER" >/dev/null 2>&1 || true
    sacctmgr -n -P list association user="$(id -un)" account="$ACCOUNT" format=account | grep -qx "$ACCOUNT" \
        || die "sacctmgr could not register user $(id -un) in account $ACCOUNT; see $DIR/log/slurmdbd.log"
    start slurmctld slurmctld -D -f "$DIR/etc/slurm.conf"
    wait_for slurmctld 60 scontrol ping
    start slurmd slurmd -D -f "$DIR/etc/slurm.conf"
    wait_for slurmd 60 bash -c "sinfo -h -N -o '%t' | grep -qE '^(idle|mix|alloc)'"
    log "up: partition $PARTITION, account $ACCOUNT, configuration $DIR/etc/slurm.conf"
    sinfo
}

down() {
    local pid name
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
        name=${DAEMONS[i]}
        if running "$name"; then
            pid=$(<"$DIR/pids/$name")
            kill "$pid"
            for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
            log "$name stopped (pid $pid)"
        fi
        rm -f "$DIR/pids/$name"
    done
    if [[ -L /etc/slurm/slurm.conf && $(readlink /etc/slurm/slurm.conf) == "$DIR/etc/slurm.conf" ]]; then
        rm /etc/slurm/slurm.conf
    fi
}

status() {
    local all=0
    for name in "${DAEMONS[@]}"; do
        if running "$name"; then echo "$name running (pid $(<"$DIR/pids/$name"))"; else echo "$name stopped"; all=1; fi
    done
    return $all
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) echo "usage: $0 up|down|status   (state in \$LMEM_SLURM_DIR, default /tmp/lmem-slurm)" >&2; exit 2 ;;
esac
