#!/usr/bin/env bash
# The throwaway PostgreSQL cluster the tests run against.
#
#   pg_cluster.sh start <dir>            initdb into <dir>/cluster/data, start the server on a unix
#                                        socket in <dir>/cluster/run (no TCP: listen_addresses='')
#   pg_cluster.sh stop <dir>             stop it and remove the cluster
#   pg_cluster.sh restart <dir> [mode]   pg_ctl restart -m fast|immediate (the restart tests)
#   pg_cluster.sh halt <dir> | resume <dir>   stop the server, keeping the cluster; start it again
#
# As root, the server runs as Debian's unprivileged `postgres` user, which
# owns the cluster folder; when that user cannot reach <dir>, the cluster
# lives under /tmp and <dir>/cluster is a symlink to it. fsync and
# synchronous_commit stay on. Clients connect with
# "host=<dir>/cluster/run user=postgres dbname=postgres"; the role
# porter_pw (password 'right', scram) serves the wrong-credentials test.
# A missing server is a failure, never a skip.
set -euo pipefail
cmd=${1:?usage: pg_cluster.sh start|stop|restart <dir> [mode]}
dir=${2:?usage: pg_cluster.sh start|stop|restart <dir> [mode]}
mode=${3:-fast}

bindir=$(pg_config --bindir 2>/dev/null || true)
if [ ! -x "$bindir/initdb" ]; then
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
fi
if [ ! -x "$bindir/initdb" ] || [ ! -x "$bindir/pg_ctl" ]; then
  echo "pg_cluster: FAIL: no PostgreSQL server binaries (initdb, pg_ctl) found; apt-get install postgresql" >&2
  exit 1
fi

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

cluster="$dir/cluster"
# The server's user reaches the cluster by its real path: the build folder
# may sit under a folder it cannot traverse (then cluster is a symlink to /tmp).
resolve() {
  local real
  real=$(readlink -f "$cluster" 2>/dev/null || echo "$cluster")
  data="$real/data"
  run="$real/run"
}
resolve

stop_cluster() {
  if [ -f "$data/postmaster.pid" ]; then
    as_owner "$bindir/pg_ctl" -D "$data" stop -m fast -w -t 60 >/dev/null 2>&1 ||
      as_owner "$bindir/pg_ctl" -D "$data" stop -m immediate -w -t 60 >/dev/null 2>&1 || true
  fi
  if [ -L "$cluster" ]; then
    rm -rf "$(readlink "$cluster")"
  fi
  rm -rf "$cluster"
}

case "$cmd" in
  start)
    stop_cluster
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then
      id postgres >/dev/null 2>&1 || { echo "pg_cluster: FAIL: no 'postgres' user to run the server as" >&2; exit 1; }
      if runuser -u postgres -- test -x "$dir"; then
        mkdir -p "$cluster"
      else
        tmp=$(mktemp -d /tmp/porter-pg-XXXXXX)
        ln -s "$tmp" "$cluster"
      fi
      chown postgres: "$(readlink -f "$cluster")"
      chmod 700 "$(readlink -f "$cluster")"
    else
      mkdir -p "$cluster"
    fi
    resolve
    as_owner mkdir -p "$run"
    as_owner "$bindir/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; echo "pg_cluster: FAIL: initdb" >&2; exit 1; }
    real_run=$(readlink -f "$run")
    as_owner tee -a "$data/postgresql.conf" >/dev/null <<CONF
listen_addresses = ''
unix_socket_directories = '$real_run'
fsync = on
synchronous_commit = on
max_connections = 300
shared_buffers = 128MB
logging_collector = off
CONF
    # The password role first: it must authenticate; everyone else is trusted (a private socket).
    as_owner sh -c "printf 'local all porter_pw scram-sha-256\nlocal all all trust\n' > '$data/pg_hba.conf'"
    as_owner "$bindir/pg_ctl" -D "$data" -l "$(readlink -f "$cluster")/server.log" -w -t 60 start >/dev/null ||
      { cat "$cluster/server.log" >&2 || true; echo "pg_cluster: FAIL: the server did not start" >&2; exit 1; }
    as_owner "$bindir/psql" -h "$real_run" -U postgres -d postgres -qAt -v ON_ERROR_STOP=1 \
      -c "CREATE ROLE porter_pw LOGIN PASSWORD 'right'" >/dev/null
    echo "pg_cluster: PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on $run"
    ;;
  stop)
    stop_cluster
    ;;
  halt)
    as_owner "$bindir/pg_ctl" -D "$data" stop -m fast -w -t 60 >/dev/null
    ;;
  resume)
    as_owner "$bindir/pg_ctl" -D "$data" start -w -t 60 -l "$(readlink -f "$cluster")/server.log" >/dev/null
    ;;
  restart)
    as_owner "$bindir/pg_ctl" -D "$data" restart -m "$mode" -w -t 60 -l "$(readlink -f "$cluster")/server.log" >/dev/null
    ;;
  *)
    echo "usage: pg_cluster.sh start|stop|restart|halt|resume <dir> [mode]" >&2
    exit 2
    ;;
esac
