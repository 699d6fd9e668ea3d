# Sourced by .ci/run: install and start a throwaway PostgreSQL on 127.0.0.1 only,
# export DIEN_BENCH_PG_URL for the distributed-tuning tests, and stop it on exit.
# Without it those tests skip with a message; nothing else depends on it.
pg_start() {
  if ! command -v pg_ctlcluster >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) || return 1
  fi
  local bin; bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  PG_DIR=$(mktemp -d /tmp/dien-bench-pg.XXXXXX)
  chown postgres "$PG_DIR"
  su postgres -c "$bin/initdb -D $PG_DIR/data -A trust -U postgres" >/dev/null || return 1
  su postgres -c "$bin/pg_ctl -D $PG_DIR/data -l $PG_DIR/log -w -o '-c listen_addresses=127.0.0.1 -p 55432 -k $PG_DIR' start" >/dev/null || return 1
  su postgres -c "$bin/createdb -h 127.0.0.1 -p 55432 dien_bench" || return 1
  PG_BIN=$bin
  export DIEN_BENCH_PG_URL="postgresql://postgres@127.0.0.1:55432/dien_bench"
  trap 'su postgres -c "$PG_BIN/pg_ctl -D $PG_DIR/data -m fast stop" >/dev/null 2>&1 || true' EXIT
}
pg_start || echo "PostgreSQL could not be started: the distributed-tuning tests will skip"
