#!/usr/bin/env bash
# Installs what orthanc-gnuhealth needs on Debian bookworm, and nothing twice.
# Used by `make demo|up|test`, by .ci/run and by the Dockerfile, so that the
# three can never drift apart.
#
#   scripts/install.sh            Debian packages + the project's venv (.venv)
#   scripts/install.sh --plugin-only VENV
#                                 the Orthanc side only (container image)
#   scripts/install.sh --gnuhealth-only VENV
#                                 trytond with GNU Health, health_radiology and
#                                 SAO (in $SAO_DIR) only (container image)
#
# OHIF=0 leaves the OHIF viewer out (by default it goes to $OHIF_DIR, else
# .cache/ohif, served by Orthanc's ServeFolders plugin under /ohif/).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$here/.venv}
plugin_only= gnuhealth_only=
case "${1:-}" in
    --plugin-only) plugin_only=1 ;;
    --gnuhealth-only) gnuhealth_only=1 ;;
esac
if [ -n "$plugin_only$gnuhealth_only" ]; then
    venv=${2:?usage: install.sh --plugin-only|--gnuhealth-only VENV}
fi

# Orthanc and its plugins, dcmtk for C-STORE/C-FIND, and Debian's Python 3.11:
# Orthanc's embedded interpreter is /usr/bin/python3, so the venv must be too.
apt_packages=(python3 python3-venv)
[ -n "$gnuhealth_only" ] || apt_packages+=(orthanc orthanc-python orthanc-dicomweb
                                           orthanc-webviewer orthanc-postgresql)
# GNU Health's gnuhealth-control needs psycopg2, which pip builds from source.
[ -n "$plugin_only" ] || apt_packages+=(gcc libpq-dev python3-dev)
# GNU Health's image: psql and pg_dump for its first start and backups.
[ -z "$gnuhealth_only" ] || apt_packages+=(postgresql-client)
# Not for the images: dcmtk for the tests, Chromium for the browser
# tests (driven by Playwright, never `playwright install`), and npm for SAO
# unless one is there already (e.g. from NodeSource's nodejs).
# PostgreSQL 15 for the tests of a two-node Orthanc cluster (tests/integration).
# openssl: scripts/deploy_secrets.sh, which the compose tests run.
[ -n "$plugin_only$gnuhealth_only" ] || apt_packages+=(dcmtk chromium postgresql openssl)
# npm also fetches OHIF, for the plugin alone too (Orthanc serves it).
with_ohif=${OHIF:-1}
[ -z "$gnuhealth_only" ] || with_ohif=0
ohif_dir=${OHIF_DIR:-$here/.cache/ohif}
[ -n "$plugin_only" ] && [ "$with_ohif" = 0 ] || command -v npm >/dev/null || apt_packages+=(npm)

missing=()
for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
        || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install.sh: installing Debian packages: ${missing[*]}"
    sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -q
    # The orthanc package tries to start its own service on 4242/8042; our
    # stack runs its own Orthanc processes, so keep Debian's from starting.
    DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 \
        $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

extras=plugin,tryton,gnuhealth,test
[ -z "$plugin_only" ] || extras=plugin
[ -z "$gnuhealth_only" ] || extras=tryton,gnuhealth
stamp=$venv/.orthanc-gnuhealth-$extras
if [ ! -x "$venv/bin/python" ]; then
    /usr/bin/python3 -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ "$here/pyproject.toml" -nt "$stamp" ]; then
    echo "install.sh: installing Python packages into $venv"
    "$venv/bin/pip" install -q --upgrade pip
    if [ -n "$plugin_only$gnuhealth_only" ]; then
        "$venv/bin/pip" install -q "$here[$extras]"
    else
        "$venv/bin/pip" install -q -e "$here[$extras]"
    fi
    touch "$stamp"
fi

# SAO, Tryton's web client, served by trytond from [web] root (scripts/stack.py).
# Pinned. The npm tarball holds the built dist/; its browser libraries are
# bower packages (fetched from GitHub by its postinstall), so we take the same
# libraries from npm instead and lay them out where index.html expects them.
sao_version=7.0.56
sao_libraries=(jquery@3.7.1 bootstrap@3.4.1 moment@2.30.1 gettext.js@0.7.0
               c3@0.7.20 d3@5.16.0 papaparse@5.4.1 fullcalendar@3.10.5
               mousetrap@1.6.5 sortablejs@1.15.2)
sao=${SAO_DIR:-$here/.cache/sao}
if [ -z "$plugin_only" ] && [ ! -f "$sao/.version-$sao_version" ]; then
    echo "install.sh: installing the SAO web client $sao_version into $sao"
    rm -rf "$sao" "$sao.tmp"
    mkdir -p "$sao.tmp/vendor"
    (cd "$sao.tmp" && npm pack --silent "tryton-sao@$sao_version" >/dev/null \
        && tar xzf "tryton-sao-$sao_version.tgz")
    echo '{"private": true}' > "$sao.tmp/vendor/package.json"
    (cd "$sao.tmp/vendor" && npm install --silent --ignore-scripts --no-audit \
        --no-fund "${sao_libraries[@]}" >/dev/null)
    mv "$sao.tmp/vendor" "$sao.tmp/package/vendor"
    mv "$sao.tmp/package" "$sao"
    rm -rf "$sao.tmp"
    modules=../vendor/node_modules
    mkdir -p "$sao/bower_components/d3"
    for name in jquery bootstrap moment gettext.js c3 papaparse fullcalendar mousetrap; do
        ln -s "$modules/$name" "$sao/bower_components/$name"
    done
    ln -s "$modules/sortablejs" "$sao/bower_components/Sortable"
    ln -s "../$modules/d3/dist/d3.min.js" "$sao/bower_components/d3/d3.min.js"
    touch "$sao/.version-$sao_version"
fi

# OHIF, the DICOMweb viewer: the built application of the npm package, pinned,
# rewritten to be served by Orthanc under /ohif/ (scripts/ohif_base.py).
ohif_version=3.13.2
if [ "$with_ohif" != 0 ] && [ ! -f "$ohif_dir/.version-$ohif_version" ]; then
    echo "install.sh: installing the OHIF viewer $ohif_version into $ohif_dir"
    rm -rf "$ohif_dir" "$ohif_dir.tmp"
    mkdir -p "$ohif_dir.tmp"
    (cd "$ohif_dir.tmp" && npm pack --silent "@ohif/app@$ohif_version" >/dev/null \
        && tar xzf "ohif-app-$ohif_version.tgz")
    /usr/bin/python3 "$here/scripts/ohif_base.py" "$ohif_dir.tmp/package/dist" /ohif
    mv "$ohif_dir.tmp/package/dist" "$ohif_dir"
    rm -rf "$ohif_dir.tmp"
    touch "$ohif_dir/.version-$ohif_version"
fi
