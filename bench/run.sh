#!/usr/bin/env bash
# The macro benchmark of pgveil: one command, everything throwaway.
#
#   bench/run.sh                 # full run (about 15-20 minutes on 2 cores), writes BENCHMARKS.md
#   BENCH_T=2 BENCH_REPS=1 BENCH_ROWS=100000 BENCH_IDLE=100 bench/run.sh   # a quick smoke run
#
# What it does (see BENCHMARKS.md for the results and how to read them):
#  1. builds pgveil and the bench client (examples/bench_client.rs) in release;
#  2. starts a throwaway PostgreSQL (initdb + pg_ctl into a temporary directory, as the
#     `postgres` OS user when run as root; SCRAM on TCP; max_connections 1100), loads
#     `pgbench -i -s 10` and a wide table (BENCH_ROWS rows x 10 columns, 5 of them personal
#     data masked for the restricted role by bench/rules/);
#  3. starts pgveil with bench/rules/ (login bench_full: unrestricted; bench_masked: restricted,
#     5 masked columns) and PgBouncer in session mode when it is installed;
#  4. runs interleaved repetitions (BENCH_REPS, default 3; the order of the targets rotates each
#     repetition) of: pgbench -S (simple/extended/prepared, -c 1 and -c 16), the wide-table
#     result in text (psql), binary (bench_client) and COPY, BENCH_CONNS connections opened and
#     closed in sequence (pgbench -C), BENCH_IDLE idle sessions held while pgbench -c 8 runs;
#  5. reads CPU time (utime+stime from /proc) of PostgreSQL, PgBouncer and pgveil around every
#     run, and pgveil's RSS (VmRSS/VmHWM), and writes the report between the markers of
#     BENCH_OUT (default BENCHMARKS.md), keeping the text around them.
#
# Environment: BENCH_T (pgbench seconds, default 5), BENCH_REPS (3), BENCH_SCALE (10),
# BENCH_SECTIONS (default "pgbench stream connect idle maskcost syscalls": which parts to run; add
# "hold" to keep everything running afterwards for manual profiling),
# BENCH_ROWS (1000000), BENCH_CONNS (500), BENCH_IDLE (1000), BENCH_OUT, BENCH_NO_BUILD=1 (use
# the binaries in target/release as they are), BENCH_KEEP=1 (keep the work directory),
# PGVEIL_PG_BINDIR (PostgreSQL's bin directory).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
T=${BENCH_T:-5}
REPS=${BENCH_REPS:-3}
SCALE=${BENCH_SCALE:-10}
ROWS=${BENCH_ROWS:-1000000}
CONNS=${BENCH_CONNS:-500}
IDLE=${BENCH_IDLE:-1000}
OUT=${BENCH_OUT:-$ROOT/BENCHMARKS.md}
SECTIONS=" ${BENCH_SECTIONS:-pgbench stream connect idle maskcost syscalls} "
want() { [[ "$SECTIONS" == *" $1 "* ]]; }
LIB="python3 $ROOT/bench/lib.py"
COMMAND_LINE="$(for v in BENCH_T BENCH_REPS BENCH_SCALE BENCH_ROWS BENCH_CONNS BENCH_IDLE BENCH_SECTIONS; do
  if [ -n "${!v:-}" ]; then printf '%s=%q ' "$v" "${!v}"; fi; done)bench/run.sh"

STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
# A measurement that failed: logged, listed in the report, and its value left empty.
fail() { log "FAILED: $*"; echo "$*" >> "${WORK:-/tmp}/failures"; }

# --- tools ----------------------------------------------------------------------------------
PGBIN=${PGVEIL_PG_BINDIR:-}
if [ -z "$PGBIN" ]; then
  if command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ]; then
    PGBIN=$(pg_config --bindir)
  else
    PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  fi
fi
[ -x "$PGBIN/initdb" ] && [ -x "$PGBIN/pg_ctl" ] && [ -x "$PGBIN/pgbench" ] ||
  die "PostgreSQL server binaries and pgbench not found (PGVEIL_PG_BINDIR=$PGBIN): apt-get install postgresql"
command -v python3 >/dev/null || die "python3 is needed for the helpers and the report"
PGBOUNCER=$(command -v pgbouncer || ls /usr/sbin/pgbouncer 2>/dev/null || true)
PSQL="$PGBIN/psql"
PGBENCH="$PGBIN/pgbench"

AS=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || die "running as root: initdb needs the postgres OS user (apt-get install postgresql)"
  AS=(runuser -u postgres --)
fi

# --- build ----------------------------------------------------------------------------------
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
  log "building pgveil and the bench client (release)"
  (cd "$ROOT" && cargo build --release --quiet --bin pgveil --example bench_client) || die "cargo build failed"
fi
[ -x "$ROOT/target/release/pgveil" ] && [ -x "$ROOT/target/release/examples/bench_client" ] ||
  die "missing target/release/pgveil or target/release/examples/bench_client"

# --- work directory and cleanup --------------------------------------------------------------
WORK=$(mktemp -d /tmp/pgveil-bench.XXXXXX)
chmod 755 "$WORK"
# Private copies: a rebuild in target/ during the run must not change what is measured (and
# a profiler can still resolve the symbols of the running binary).
cp "$ROOT/target/release/pgveil" "$ROOT/target/release/examples/bench_client" "$WORK/"
PGVEIL="$WORK/pgveil"
CLIENT="$WORK/bench_client"
[ ${#AS[@]} -gt 0 ] && chown postgres "$WORK"
DATA="$WORK/data"
PIDS=()
cleanup() {
  set +e
  touch "$WORK/stop-idle" 2>/dev/null
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  [ -f "$WORK/pgbouncer.pid" ] && kill "$(cat "$WORK/pgbouncer.pid")" 2>/dev/null
  [ -f "$DATA/postmaster.pid" ] && "${AS[@]}" "$PGBIN/pg_ctl" -D "$DATA" -m immediate -w stop >/dev/null 2>&1
  if [ "${BENCH_KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PGPORT=$($LIB freeport)
BPORT=$($LIB freeport)
VPORT=$($LIB freeport)
PASS=bench

# --- PostgreSQL -----------------------------------------------------------------------------
log "initdb in $DATA (PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'))"
echo "$PASS" > "$WORK/pwfile"
[ ${#AS[@]} -gt 0 ] && chown postgres "$WORK/pwfile"
(cd "$WORK" && "${AS[@]}" "$PGBIN/initdb" -D "$DATA" -U postgres -E UTF8 --locale=C.UTF-8 \
  --auth-local=trust --auth-host=scram-sha-256 --pwfile="$WORK/pwfile" --no-sync --no-instructions >/dev/null) ||
  die "initdb failed"
rm -f "$WORK/pwfile"
cat >> "$DATA/postgresql.conf" <<EOF
# --- pgveil macro benchmark ---
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$WORK'
max_connections = 1100
shared_buffers = 256MB
fsync = off
synchronous_commit = off
full_page_writes = off
wal_level = minimal
max_wal_senders = 0
password_encryption = 'scram-sha-256'
log_min_messages = warning
timezone = 'UTC'
EOF
(cd "$WORK" && "${AS[@]}" "$PGBIN/pg_ctl" -D "$DATA" -l "$WORK/postgres.log" -w -t 60 start >/dev/null) ||
  { tail -20 "$WORK/postgres.log" >&2; die "PostgreSQL did not start"; }
POSTMASTER=$(head -1 "$DATA/postmaster.pid")
psql_local() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -h "$WORK" -p "$PGPORT" -U postgres "$@"; }
psql_local -d postgres -c "CREATE DATABASE bench" || die "createdb failed"

log "pgbench -i -s $SCALE"
"$PGBENCH" -i -q -s "$SCALE" -h "$WORK" -p "$PGPORT" -U postgres bench >"$WORK/pgbench-init.log" 2>&1 ||
  { tail "$WORK/pgbench-init.log" >&2; die "pgbench -i failed"; }

log "wide table: $ROWS rows x 10 columns (5 masked for bench_masked)"
psql_local -d bench <<EOF || die "creating the wide table failed"
CREATE TABLE wide (
    id         integer PRIMARY KEY,
    name       text NOT NULL,          -- masked: cn_name
    id_number  varchar(18) NOT NULL,   -- masked: cn_id
    phone      varchar(20),            -- masked: phone
    email      text,                   -- masked: email
    bank_card  varchar(19),            -- masked: bank_card
    city       text NOT NULL,
    vip_level  integer NOT NULL,
    amount     numeric(12,2) NOT NULL,
    created_at timestamp NOT NULL
);
INSERT INTO wide
SELECT g,
       (ARRAY['张','李','王','欧阳','司马','赵','陈','刘'])[1 + g % 8]
         || (ARRAY['三','娜娜','小明','光','相如','敏','伟','芳'])[1 + (g / 8) % 8],
       lpad((110101 + g % 500)::text, 6, '0') || (19500101 + (g % 50) * 10000 + (g % 12) * 100 + g % 28)::text
         || lpad((g % 1000)::text, 3, '0') || (ARRAY['0','1','2','3','4','5','6','7','8','9','X'])[1 + g % 11],
       '1' || (3 + g % 7)::text || lpad(((g::bigint * 7919) % 1000000000)::text, 9, '0'),
       'user' || g || '.name@example' || (g % 7) || '.com',
       '62' || lpad(((g::bigint * 104729) % 100000000000000)::text, 14, '0'),
       (ARRAY['深圳','北京','上海','杭州','广州','成都','伊宁'])[1 + g % 7],
       g % 5,
       ((g::bigint * 37) % 10000000) / 100.0,
       timestamp '2020-01-01' + (g::bigint * 97) * interval '1 second'
  FROM generate_series(1, $ROWS) g;
VACUUM ANALYZE wide;
EOF
WIDE_SQL="SELECT * FROM wide"
COPY_SQL="COPY (SELECT * FROM wide) TO STDOUT"

# --- pgveil -----------------------------------------------------------------------------------
UPSTREAM="postgres://postgres:$PASS@127.0.0.1:$PGPORT/bench"
log "pgveil on 127.0.0.1:$VPORT"
RUST_LOG=${RUST_LOG:-warn} "$PGVEIL" serve --listen "127.0.0.1:$VPORT" --upstream "$UPSTREAM" \
  --rules "$ROOT/bench/rules" --lockout-failures 0 >"$WORK/pgveil.log" 2>&1 &
VEIL_PID=$!
PIDS+=("$VEIL_PID")
for _ in $(seq 100); do
  PGPASSWORD=bench_full "$PSQL" -X -q -h 127.0.0.1 -p "$VPORT" -U bench_full -d bench -c "SELECT 1" >/dev/null 2>&1 && break
  kill -0 "$VEIL_PID" 2>/dev/null || { cat "$WORK/pgveil.log" >&2; die "pgveil exited"; }
  sleep 0.2
done
PGPASSWORD=bench_masked "$PSQL" -X -q -h 127.0.0.1 -p "$VPORT" -U bench_masked -d bench \
  -c "SELECT name, id_number, phone, email, bank_card FROM wide ORDER BY id LIMIT 2" >"$WORK/masked-sample.txt" 2>&1 ||
  { cat "$WORK/masked-sample.txt" "$WORK/pgveil.log" >&2; die "the restricted login cannot read through pgveil"; }

# --- PgBouncer --------------------------------------------------------------------------------
BOUNCER_PID=""
if [ -n "$PGBOUNCER" ]; then
  log "PgBouncer ($("$PGBOUNCER" --version | head -1)) on 127.0.0.1:$BPORT, session mode"
  VERIFIER=$(psql_local -d postgres -At -c "SELECT rolpassword FROM pg_authid WHERE rolname = 'postgres'")
  printf '"postgres" "%s"\n' "$VERIFIER" > "$WORK/userlist.txt"
  cat > "$WORK/pgbouncer.ini" <<EOF
[databases]
bench = host=127.0.0.1 port=$PGPORT dbname=bench
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BPORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $WORK/userlist.txt
pool_mode = session
max_client_conn = 1200
default_pool_size = 1100
logfile = $WORK/pgbouncer.log
pidfile = $WORK/pgbouncer.pid
log_connections = 0
log_disconnections = 0
ignore_startup_parameters = extra_float_digits
EOF
  [ ${#AS[@]} -gt 0 ] && chown postgres "$WORK/userlist.txt" "$WORK/pgbouncer.ini"
  # runuser resets the soft fd limit to 1024: too few for 1,000 clients + 1,000 servers.
  (cd "$WORK" && "${AS[@]}" sh -c 'ulimit -n "$(ulimit -Hn)" && exec "$0" "$@"' "$PGBOUNCER" -d "$WORK/pgbouncer.ini") ||
    die "PgBouncer did not start"
  for _ in $(seq 50); do [ -s "$WORK/pgbouncer.pid" ] && break; sleep 0.1; done
  BOUNCER_PID=$(cat "$WORK/pgbouncer.pid")
  PGPASSWORD=$PASS "$PSQL" -X -q -h 127.0.0.1 -p "$BPORT" -U postgres -d bench -c "SELECT 1" >/dev/null ||
    die "cannot connect through PgBouncer"
else
  log "PgBouncer not installed: its columns stay empty"
fi

# --- targets --------------------------------------------------------------------------------
# target -> "port user password"
declare -A TGT
TGT[direct]="$PGPORT postgres $PASS"
[ -n "$BOUNCER_PID" ] && TGT[pgbouncer]="$BPORT postgres $PASS"
TGT[pgveil_full]="$VPORT bench_full bench_full"
TGT[pgveil_masked]="$VPORT bench_masked bench_masked"
# The rewritten text pgveil sends for the restricted role, run directly: PostgreSQL's own cost
# of computing the masks, without pgveil in the path.
# For `SELECT * FROM wide` pgveil masks the 5 columns in the result itself (they are only
# selected); one query level down, as for any statement that computes on a masked column, the
# masks are computed by PostgreSQL. NESTED_* take that path through pgveil (target
# pgveil_masked_sql); MASKED_* are what pgveil forwards for them, run directly (direct_masksql).
NESTED_WIDE_SQL="SELECT * FROM (SELECT * FROM wide) w"
NESTED_COPY_SQL="COPY (SELECT * FROM (SELECT * FROM wide) w) TO STDOUT"
MASKED_WIDE_SQL=$("$CLIENT" rewrite "$ROOT/bench/rules" "$UPSTREAM" bench_masked "$NESTED_WIDE_SQL") ||
  die "bench_client rewrite failed"
MASKED_COPY_SQL=$("$CLIENT" rewrite "$ROOT/bench/rules" "$UPSTREAM" bench_masked "$NESTED_COPY_SQL") ||
  die "bench_client rewrite failed"
echo "$MASKED_WIDE_SQL" > "$WORK/masked-wide.sql"

RESULTS="$WORK/results.tsv"
printf 'section\ttest\ttarget\trep\tvalue\tunits\tpg_cpu_s\tproxy_cpu_s\tproxy_rss_kb\n' > "$RESULTS"

proxy_pid() {
  case "$1" in
    pgveil_*) echo "$VEIL_PID" ;;
    pgbouncer) echo "$BOUNCER_PID" ;;
    *) echo 0 ;;
  esac
}

# rotate N ITEMS...: the items rotated left by N.
rotate() {
  local n=$1; shift
  local a=("$@") k=${#a[@]} i
  for ((i = 0; i < k; i++)); do printf '%s ' "${a[(i + n) % k]}"; done
}

# record SECTION TEST TARGET REP VALUE UNITS CPU_BEFORE CPU_AFTER
record() {
  local cpu pxrss
  cpu=$($LIB cpudiff "$7" "$8")
  pxrss=$($LIB rss "$(proxy_pid "$3")" | awk '{print $1}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$6" "$cpu" "$pxrss" >> "$RESULTS"
}

cpu_now() { $LIB cpu "$POSTMASTER" "$(proxy_pid "$1")"; }

# pgbench_run TARGET ARGS... -> prints "tps transactions"
pgbench_run() {
  local t=$1; shift
  local port user pw out
  read -r port user pw <<<"${TGT[$t]}"
  out=$(PGPASSWORD=$pw "$PGBENCH" -n -h 127.0.0.1 -p "$port" -U "$user" "$@" bench 2>&1) ||
    { echo "$out" | tail -5 >&2; fail "pgbench $* against $t failed"; return 1; }
  local tps n
  tps=$(awk '/^tps = /{print $3; exit}' <<<"$out")
  n=$(awk -F': ' '/number of transactions actually processed/{split($2, a, "/"); print a[1]; exit}' <<<"$out")
  [ -n "$tps" ] && [ -n "$n" ] || { echo "$out" | tail -5 >&2; fail "cannot read pgbench's output ($t)"; return 1; }
  echo "$tps $n"
}

# --- 1. pgbench -S ----------------------------------------------------------------------------
PGB_TARGETS=(direct pgveil_full pgveil_masked)
[ -n "$BOUNCER_PID" ] && PGB_TARGETS=(direct pgbouncer pgveil_full pgveil_masked)
want pgbench && log "pgbench -S: ${#PGB_TARGETS[@]} targets x 3 modes x 2 client counts x $REPS reps x ${T}s"
want pgbench && for rep in $(seq "$REPS"); do
  for mode in simple extended prepared; do
    for c in 1 16; do
      j=1; [ "$c" -gt 1 ] && j=2
      for t in $(rotate "$rep" "${PGB_TARGETS[@]}"); do
        b=$(cpu_now "$t")
        read -r tps n <<<"$(pgbench_run "$t" -S -M "$mode" -c "$c" -j "$j" -T "$T")"
        a=$(cpu_now "$t")
        record pgbench "$mode c$c" "$t" "$rep" "$tps" "tps/$n" "$b" "$a"
        log "  rep $rep $mode c$c $t: $tps tps"
      done
    done
  done
done

# --- 2. the wide result: text (psql), binary (bench_client), COPY ----------------------------
STREAM_TARGETS=(direct direct_masksql pgveil_full pgveil_masked pgveil_masked_sql)
[ -n "$BOUNCER_PID" ] && STREAM_TARGETS=(direct direct_masksql pgbouncer pgveil_full pgveil_masked pgveil_masked_sql)
TGT[direct_masksql]="$PGPORT postgres $PASS"
TGT[pgveil_masked_sql]=${TGT[pgveil_masked]}
# stream_run TARGET FORMAT -> prints seconds
stream_run() {
  local t=$1 fmt=$2 port user pw sql copy
  read -r port user pw <<<"${TGT[$t]}"
  sql=$WIDE_SQL; copy=$COPY_SQL
  if [ "$t" = direct_masksql ]; then sql=$MASKED_WIDE_SQL; copy=$MASKED_COPY_SQL; fi
  if [ "$t" = pgveil_masked_sql ]; then sql=$NESTED_WIDE_SQL; copy=$NESTED_COPY_SQL; fi
  local s e
  s=$(date +%s.%N)
  case "$fmt" in
    text) PGPASSWORD=$pw "$PSQL" -X -q -A -t -h 127.0.0.1 -p "$port" -U "$user" -d bench -c "$sql" >/dev/null ;;
    copy) PGPASSWORD=$pw "$PSQL" -X -q -h 127.0.0.1 -p "$port" -U "$user" -d bench -c "$copy" >/dev/null ;;
    binary) "$CLIENT" binary "postgres://$user:$pw@127.0.0.1:$port/bench" "$sql" >"$WORK/binary.out" ;;
  esac || { fail "$fmt stream against $t failed"; return 1; }
  e=$(date +%s.%N)
  if [ "$fmt" = binary ]; then
    grep -q "^rows=$ROWS " "$WORK/binary.out" || { fail "binary stream against $t: $(cat "$WORK/binary.out")"; return 1; }
  fi
  echo "$e - $s" | bc -l
}
want stream && log "wide result ($ROWS rows): ${#STREAM_TARGETS[@]} targets x text/binary/copy x $REPS reps"
want stream && for rep in $(seq "$REPS"); do
  for fmt in text binary copy; do
    for t in $(rotate "$rep" "${STREAM_TARGETS[@]}"); do
      b=$(cpu_now "$t")
      secs=$(stream_run "$t" "$fmt") || secs=""
      a=$(cpu_now "$t")
      record stream "$fmt" "$t" "$rep" "$secs" "s/$ROWS" "$b" "$a"
      log "  rep $rep $fmt $t: ${secs}s"
    done
  done
done
VEIL_HWM_STREAMS=$($LIB rss "$VEIL_PID" | awk '{print $2}')

# --- 3. connections opened and closed in sequence (SCRAM everywhere) --------------------------
want connect && log "connections: $CONNS in sequence x ${#PGB_TARGETS[@]} targets x $REPS reps"
want connect && for rep in $(seq "$REPS"); do
  for t in $(rotate "$rep" "${PGB_TARGETS[@]}"); do
    b=$(cpu_now "$t")
    read -r tps n <<<"$(pgbench_run "$t" -C -S -M simple -c 1 -j 1 -t "$CONNS")"
    a=$(cpu_now "$t")
    record connect "connect" "$t" "$rep" "$tps" "conn/$n" "$b" "$a"
    log "  rep $rep connect $t: $tps conn/s"
  done
done

# --- 4. idle sessions held while pgbench -c 8 runs --------------------------------------------
IDLE_TARGETS=(direct pgveil_masked)
[ -n "$BOUNCER_PID" ] && IDLE_TARGETS=(direct pgbouncer pgveil_masked)
want idle && log "idle: $IDLE sessions x ${#IDLE_TARGETS[@]} targets x $REPS reps, pgbench -S -M prepared -c 8 -T $T"
want idle && for rep in $(seq "$REPS"); do
  for t in $(rotate "$rep" "${IDLE_TARGETS[@]}"); do
    read -r port user pw <<<"${TGT[$t]}"
    pid=$(proxy_pid "$t")
    rss_before=$($LIB rss "$pid" | awk '{print $1}')
    rm -f "$WORK/stop-idle"; : >"$WORK/idle.out"
    "$CLIENT" idle "postgres://$user:$pw@127.0.0.1:$port/bench" "$IDLE" "$WORK/stop-idle" >"$WORK/idle.out" 2>&1 &
    idle_pid=$!
    PIDS+=("$idle_pid")
    for _ in $(seq 1200); do
      grep -q '^ready' "$WORK/idle.out" && break
      kill -0 "$idle_pid" 2>/dev/null || break
      sleep 0.1
    done
    if ! grep -q '^ready' "$WORK/idle.out"; then
      fail "idle sessions against $t did not open: $(tail -2 "$WORK/idle.out")"
      touch "$WORK/stop-idle"; wait "$idle_pid" || true
      continue
    fi
    rss_idle=$($LIB rss "$pid" | awk '{print $1}')
    b=$(cpu_now "$t")
    read -r tps n <<<"$(pgbench_run "$t" -S -M prepared -c 8 -j 2 -T "$T")"
    a=$(cpu_now "$t")
    record idle "pgbench c8 with $IDLE idle" "$t" "$rep" "$tps" "tps/$n" "$b" "$a"
    printf 'idle\tproxy rss before/with idle (kB)\t%s\t%s\t%s\tkB\t\t\t%s\n' "$t" "$rep" "$rss_idle" "$rss_before" >> "$RESULTS"
    touch "$WORK/stop-idle"
    wait "$idle_pid" || fail "the idle client against $t failed: $(tail -2 "$WORK/idle.out")"
    log "  rep $rep idle $t: $tps tps; opened: $(cat "$WORK/idle.out"); proxy RSS ${rss_before} -> ${rss_idle} kB"
    sleep 1
  done
done
VEIL_HWM_END=$($LIB rss "$VEIL_PID" | awk '{print $2}')

# --- 5. where the restricted stream's time goes: each mask's SQL alone ------------------------
# COPY of one column, clear vs. as pgveil's masking SQL computes it, run directly: PostgreSQL's
# cost per mask, without any proxy.
if want maskcost; then
  log "mask cost in PostgreSQL: one column at a time, clear vs masked SQL, $REPS reps"
  for rep in $(seq "$REPS"); do
    for col in name id_number phone email bank_card; do
      masked=$("$CLIENT" rewrite "$ROOT/bench/rules" "$UPSTREAM" bench_masked "SELECT * FROM (SELECT $col FROM wide) w") ||
        die "bench_client rewrite failed"
      for variant in clear masked; do
        q="SELECT $col FROM wide"; [ "$variant" = masked ] && q=$masked
        b=$(cpu_now direct)
        s0=$(date +%s.%N)
        PGPASSWORD=$PASS "$PSQL" -X -q -h 127.0.0.1 -p "$PGPORT" -U postgres -d bench \
          -c "COPY ($q) TO STDOUT" >/dev/null || fail "COPY of $col ($variant) failed"
        e0=$(date +%s.%N)
        a=$(cpu_now direct)
        record maskcost "$col" "$variant" "$rep" "$(echo "$e0 - $s0" | bc -l)" "s/$ROWS" "$b" "$a"
      done
    done
  done
fi

# --- 6. syscalls and context switches of the proxies per transaction (perf stat) -------------
if want syscalls && command -v perf >/dev/null && perf stat -e raw_syscalls:sys_enter -o /dev/null true 2>/dev/null; then
  log "syscalls per transaction (perf stat on the proxy, pgbench -S -M prepared -c 16)"
  for t in pgbouncer pgveil_full pgveil_masked; do
    [ -n "${TGT[$t]:-}" ] || continue
    pid=$(proxy_pid "$t")
    perf stat -e raw_syscalls:sys_enter,context-switches -x, -p "$pid" -o "$WORK/perf-$t.txt" -- sleep $((T + 2)) >/dev/null 2>&1 &
    perf_pid=$!
    sleep 0.5
    read -r tps n <<<"$(pgbench_run "$t" -S -M prepared -c 16 -j 2 -T "$T")"
    wait "$perf_pid" || true
    sc=$(awk -F, '/raw_syscalls/{print $1}' "$WORK/perf-$t.txt")
    cs=$(awk -F, '/context-switches/{print $1}' "$WORK/perf-$t.txt")
    if [ -n "$n" ] && [ -n "$sc" ] && [ -n "$cs" ]; then
      printf 'syscalls	prepared c16	%s	1	%s	syscalls/%s	%s		
' "$t" "$sc" "$n" "$cs" >> "$RESULTS"
    else
      fail "perf stat on $t gave nothing"
    fi
  done
fi

# Keeps everything running for manual profiling until $WORK/stop exists.
if want hold; then
  log "holding: PostgreSQL 127.0.0.1:$PGPORT (postgres/$PASS), PgBouncer :$BPORT, pgveil :$VPORT (pid $VEIL_PID); touch $WORK/stop to end"
  until [ -e "$WORK/stop" ]; do sleep 1; done
fi

# --- report -----------------------------------------------------------------------------------
cp "$RESULTS" "$ROOT/target/bench-results.tsv" 2>/dev/null || true
rm -f "$ROOT/target/bench-failures.txt"
if [ -f "$WORK/failures" ]; then cp "$WORK/failures" "$ROOT/target/bench-failures.txt"; fi
cp "$WORK/masked-sample.txt" "$ROOT/target/bench-masked-sample.txt" 2>/dev/null || true
REPORT_ARGS=(report "$ROOT/target/bench-results.tsv" "$OUT" \
  --command "$COMMAND_LINE" --t "$T" --reps "$REPS" --scale "$SCALE" --rows "$ROWS" \
  --conns "$CONNS" --idle "$IDLE" --hwm-streams "$VEIL_HWM_STREAMS" --hwm-end "$VEIL_HWM_END" \
  --pg-version "$("$PGBIN/postgres" --version)" --bouncer-version "$([ -n "$PGBOUNCER" ] && "$PGBOUNCER" --version | head -1)" \
  --failures "$ROOT/target/bench-failures.txt" --sample "$ROOT/target/bench-masked-sample.txt" --started "$STARTED" \
  --criterion "$ROOT/target/criterion" --ended "$(date -u '+%Y-%m-%d %H:%M UTC')" \
  --load "$(cut -d' ' -f1-3 /proc/loadavg)")
$LIB "${REPORT_ARGS[@]}"
# The same report again later (e.g. after a fresh `cargo bench`): sh target/bench-report.sh
printf 'python3 %q' "$ROOT/bench/lib.py" > "$ROOT/target/bench-report.sh"
printf ' %q' "${REPORT_ARGS[@]}" >> "$ROOT/target/bench-report.sh"
echo >> "$ROOT/target/bench-report.sh"
log "report written to $OUT (raw results: target/bench-results.tsv)"
