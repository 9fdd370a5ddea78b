#!/bin/bash
# The replica: on first start, copy the primary (pg_basebackup -R writes the standby settings), then run.
set -euo pipefail
if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
    export PGPASSWORD="$REPLICATION_PASSWORD"
    until pg_basebackup -h postgres-primary -U replicator -D "$PGDATA" -R -X stream -c fast; do
        echo "waiting for the primary"; rm -rf "${PGDATA:?}"/*; sleep 2
    done
    chmod 700 "$PGDATA"
fi
exec postgres -c config_file=/etc/postgresql/postgresql.conf
