#!/usr/bin/env bash
# Single-node Ceph for S3 tests: one mon, one memstore OSD, one RGW (beast) on
# 0.0.0.0:7480. Everything is created afresh at every start (memstore keeps
# the data in RAM; nothing survives the container). Prints "RGW READY ..." on
# stdout once S3 answers and the S3 user exists.
set -euo pipefail

MEMSTORE_SIZE_MB="${MEMSTORE_SIZE_MB:-1024}"
S3_ACCESS_KEY="${S3_ACCESS_KEY:-testaccess}"
S3_SECRET_KEY="${S3_SECRET_KEY:-testsecret}"
S3_USER="${S3_USER:-test}"
RGW_PORT=7480
STARTUP_TIMEOUT_S="${STARTUP_TIMEOUT_S:-120}"

HELPER_DIR=/usr/local/lib/ceph-rgw
LOG_DIR=/var/log/ceph
MON_DIR=/var/lib/ceph/mon/ceph-a
OSD_DIR=/var/lib/ceph/osd/ceph-0
RGW_DIR=/var/lib/ceph/radosgw/ceph-rgw.gw
START_NS=$(date +%s%N)

log() { printf '[ceph-rgw] %s\n' "$*"; }
elapsed() { echo "$(( ($(date +%s%N) - START_NS) / 1000000 ))"; }

PIDS=()
stop_all() {
  # Test data is throw-away: SIGKILL, so memstore does not spend time writing
  # its RAM contents to disk on a clean unmount.
  trap - TERM INT
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  exit "${1:-0}"
}
trap 'log "signal received, stopping"; stop_all 0' TERM INT

fail() {
  echo "[ceph-rgw] ERROR: $*" >&2
  for f in "$LOG_DIR"/*.log; do
    [ -s "$f" ] || continue
    echo "----- tail of $f -----" >&2
    tail -n 40 "$f" >&2
  done
  stop_all 1
}

case "$MEMSTORE_SIZE_MB" in ''|*[!0-9]*) fail "MEMSTORE_SIZE_MB must be a number of MiB" ;; esac

# Fresh state at every start (also after `docker restart`).
rm -rf /var/lib/ceph/mon /var/lib/ceph/osd /var/lib/ceph/radosgw /var/lib/ceph/tmp "$LOG_DIR"
mkdir -p "$MON_DIR" "$OSD_DIR" "$RGW_DIR" "$LOG_DIR" /var/lib/ceph/tmp /etc/ceph /run/ceph

FSID=$(uuidgen)
OSD_UUID=$(uuidgen)

cat > /etc/ceph/ceph.conf <<EOF
[global]
fsid = $FSID
mon_initial_members = a
mon_host = 127.0.0.1
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
# No cephx: one container, loopback only, test data.
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
# Daemons (radosgw) default to "secure" mode towards the mon, which auth
# "none" cannot provide (the connection fails with -13).
ms_mon_client_mode = crc
ms_tcp_nodelay = true
log_file = $LOG_DIR/\$cluster-\$name.log
log_to_stderr = false
err_to_stderr = false
mon_cluster_log_file = $LOG_DIR/\$cluster.log
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
mon_warn_on_pool_no_redundancy = false
mon_warn_on_insecure_global_id_reclaim_allowed = false
# The mon refuses to run when its disk is >95 % full; a test host may well be.
mon_data_avail_crit = 0
mon_data_avail_warn = 0

[mon]
mon_data = /var/lib/ceph/mon/\$cluster-\$id
# Default 1 s between paxos proposals makes every pool create / OSD boot step
# take ~1 s; one node, no peers: commit at once.
paxos_propose_interval = 0.01
paxos_min_wait = 0.01

[osd]
osd_data = /var/lib/ceph/osd/\$cluster-\$id
osd_objectstore = memstore
memstore_device_bytes = $(( MEMSTORE_SIZE_MB * 1024 * 1024 ))
osd_crush_initial_weight = 1

[client.rgw.gw]
rgw_data = $RGW_DIR
rgw_frontends = beast endpoint=0.0.0.0:$RGW_PORT tcp_nodelay=1
rgw_thread_pool_size = 128
rgw_dynamic_resharding = false
# Deleted/overwritten object tails sit in the GC queue for 2 h by default;
# memstore holds them in RAM, so collect them quickly.
rgw_gc_obj_min_wait = 30
rgw_gc_processor_period = 30
EOF
# Extra ceph.conf text (may contain [section] lines), appended last so it wins.
if [ -n "${CEPH_EXTRA_CONF:-}" ]; then printf '\n%s\n' "$CEPH_EXTRA_CONF" >> /etc/ceph/ceph.conf; fi

wait_for() { # description, timeout_s, command...
  local what="$1" timeout_s="$2"; shift 2
  local deadline=$(( $(date +%s) + timeout_s ))
  until "$@" >/dev/null 2>&1; do
    if (( $(date +%s) >= deadline )); then fail "timed out waiting for $what"; fi
    for pid in "${PIDS[@]}"; do
      kill -0 "$pid" 2>/dev/null || fail "a ceph daemon (pid $pid) exited while waiting for $what"
    done
    sleep 0.1
  done
}

mon_cmds() { python3 "$HELPER_DIR/mon-commands.py" "$@"; }

s3_answers() { # anonymous ListBuckets -> HTTP 200
  local status
  exec 3<>"/dev/tcp/127.0.0.1/$RGW_PORT" || return 1
  printf 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
  IFS= read -r -t 2 status <&3 || { exec 3>&-; return 1; }
  exec 3>&-
  [[ "$status" == "HTTP/1.1 200"* ]]
}

# --- monitor ---------------------------------------------------------------
monmaptool --create --fsid "$FSID" --addv a "[v2:127.0.0.1:3300,v1:127.0.0.1:6789]" \
  /var/lib/ceph/tmp/monmap >"$LOG_DIR/setup.log" 2>&1 || fail "monmaptool failed"
ceph-mon --mkfs -i a --monmap /var/lib/ceph/tmp/monmap >>"$LOG_DIR/setup.log" 2>&1 || fail "ceph-mon --mkfs failed"
ceph-mon -f -i a >>"$LOG_DIR/mon-stdout.log" 2>&1 &
PIDS+=($!)

# --- OSD (memstore) and pools ---------------------------------------------
# One connection for all mon commands; pools are created before the OSD is up
# (RGW would otherwise create them lazily, ~2 s each on the first bucket/PUT).
pool_cmds=()
for pool in .rgw.root default.rgw.log default.rgw.control default.rgw.meta \
            default.rgw.buckets.index default.rgw.buckets.data default.rgw.buckets.non-ec; do
  pool_cmds+=("{\"prefix\":\"osd pool create\",\"pool\":\"$pool\",\"pg_num\":8,\"pgp_num\":8}")
  pool_cmds+=("{\"prefix\":\"osd pool application enable\",\"pool\":\"$pool\",\"app\":\"rgw\"}")
done
mon_cmds "{\"prefix\":\"osd new\",\"uuid\":\"$OSD_UUID\",\"id\":0}" "${pool_cmds[@]}" \
  >>"$LOG_DIR/setup.log" 2>&1 || fail "mon set-up commands failed"
log "mon up, pools created ($(elapsed) ms)"

ceph-osd -i 0 --mkfs --osd-uuid "$OSD_UUID" >>"$LOG_DIR/setup.log" 2>&1 || fail "ceph-osd --mkfs failed"
ceph-osd -f -i 0 >>"$LOG_DIR/osd-stdout.log" 2>&1 &
PIDS+=($!)
mon_cmds "{\"wait_osd_up\":0,\"timeout\":$STARTUP_TIMEOUT_S}" >>"$LOG_DIR/setup.log" 2>&1 \
  || fail "osd.0 did not come up"

# --- RGW and the S3 user ---------------------------------------------------
# radosgw-admin first: it creates the default realm/zone and needs the OSD, so
# it also waits for the PGs to be active. Starting radosgw in parallel would
# race it on creating the default zone.
timeout "$STARTUP_TIMEOUT_S" radosgw-admin user create --uid "$S3_USER" --display-name "$S3_USER" \
  --access-key "$S3_ACCESS_KEY" --secret-key "$S3_SECRET_KEY" \
  >>"$LOG_DIR/setup.log" 2>&1 || fail "radosgw-admin user create failed"
log "osd up, S3 user '$S3_USER' created ($(elapsed) ms)"

radosgw -f -n client.rgw.gw >>"$LOG_DIR/rgw-stdout.log" 2>&1 &
PIDS+=($!)
wait_for "RGW to answer on port $RGW_PORT" "$STARTUP_TIMEOUT_S" s3_answers

echo "RGW READY port=$RGW_PORT user=$S3_USER startup_ms=$(elapsed)"

# Stay in the foreground; if any daemon dies, say so and stop the container.
set +e
wait -n "${PIDS[@]}"
fail "a ceph daemon exited (status $?)"
