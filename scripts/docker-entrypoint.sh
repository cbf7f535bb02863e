#!/usr/bin/env bash
# Entry point of the two images of the Dockerfile (compose.yaml).
#
# First, each NAME_FILE=path among the passwords below becomes NAME=<the
# file's content>: compose mounts its secrets as files under /run/secrets,
# so no password is in compose.yaml, on a command line or in `docker
# inspect`. Orthanc substitutes ${NAME} in its configuration; libpq
# (trytond, psql, pg_dump) reads PGPASSWORD.
#
#   docker-entrypoint.sh Orthanc /etc/orthanc/   any command: run it
#   docker-entrypoint.sh gnuhealth    trytond; the first time, creates GNU
#                                     Health's database; at every start, sets
#                                     the sync account's password
#   docker-entrypoint.sh upgrade      trytond-admin --all: after a new image
#                                     (docs/operations.md, "Upgrading")
#
# gnuhealth/upgrade read TRYTOND_CONFIG (default /etc/trytond.conf),
# GNUHEALTH_DATABASE (gnuhealth), GNUHEALTH_ADMIN_PASSWORD (its first start),
# GNUHEALTH_ADMIN_EMAIL, GNUHEALTH_SYNC_PASSWORD, GNUHEALTH_SYNC_LOGIN and
# GNUHEALTH_MODULES (activated on the first start; more in SAO later).
set -euo pipefail

for name in PGPASSWORD ORTHANC_ADMIN_PASSWORD GNUHEALTH_ADMIN_PASSWORD \
            GNUHEALTH_SYNC_PASSWORD; do
    variable=${name}_FILE
    [ -n "${!variable:-}" ] || continue
    path=${!variable}
    if [ ! -r "$path" ]; then
        echo "docker-entrypoint: $variable=$path: no such readable file" \
             "(a secret of compose.yaml missing from ./secrets?)" >&2
        exit 1
    fi
    # $(...) drops the trailing newline an editor leaves.
    export "$name=$(cat "$path")"
    unset "$variable"
done

src=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-/opt/orthanc-gnuhealth/venv}
conf=${TRYTOND_CONFIG:-/etc/trytond.conf}
database=${GNUHEALTH_DATABASE:-gnuhealth}
read -r -a modules <<< "${GNUHEALTH_MODULES:-health_imaging health_imaging_worklist health_radiology}"

# Exit status 0: a Tryton database; 1: an empty one; 2: not reachable.
tryton_database_state() {
    "$venv/bin/python" - "$conf" "$database" <<'EOF'
import sys
from trytond.config import config
config.update_etc(sys.argv[1])
from trytond import backend
try:
    database = backend.Database(sys.argv[2]).connect()
except Exception as error:
    print(f"docker-entrypoint: cannot reach database {sys.argv[2]}: {error}", file=sys.stderr)
    sys.exit(2)
sys.exit(0 if database.test() else 1)
EOF
}

trytond_admin() {
    "$venv/bin/trytond-admin" -c "$conf" -d "$database" "$@"
}

case "${1:-}" in
gnuhealth)
    state=0
    tryton_database_state || state=$?
    [ "$state" -le 1 ] || exit 1
    if [ "$state" = 1 ]; then
        echo "docker-entrypoint: creating GNU Health in database $database"
        # trytond-admin reads the admin password from a file (TRYTONPASSFILE).
        password_file=$(mktemp)
        trap 'rm -f "$password_file"' EXIT
        printf '%s\n' "${GNUHEALTH_ADMIN_PASSWORD:?the first start needs GNUHEALTH_ADMIN_PASSWORD(_FILE)}" \
            > "$password_file"
        TRYTONPASSFILE=$password_file trytond_admin --email "${GNUHEALTH_ADMIN_EMAIL:-admin@localhost}" \
            --activate-dependencies -u "${modules[@]}"
        rm -f "$password_file"
    fi
    printf '%s\n' "${GNUHEALTH_SYNC_PASSWORD:?GNUHEALTH_SYNC_PASSWORD(_FILE) is the sync account password}" \
        | "$venv/bin/python" "$src/scripts/demo_data.py" --config "$conf" --database "$database" \
            sync-account --login "${GNUHEALTH_SYNC_LOGIN:-orthanc-sync}" --password-file -
    exec "$venv/bin/trytond" -c "$conf"
    ;;
upgrade)
    trytond_admin --all --activate-dependencies
    ;;
*)
    exec "$@"
    ;;
esac
