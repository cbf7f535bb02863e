#!/usr/bin/env bash
# Installs what orthanc-gnuhealth needs on Debian bookworm, and nothing twice.
# Used by `make demo|up|test`, by .ci/run and by the Dockerfile, so that the
# three can never drift apart.
#
#   scripts/install.sh            Debian packages + the project's venv (.venv)
#   scripts/install.sh --plugin-only VENV
#                                 the Orthanc side only (container image)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$here/.venv}
plugin_only=
if [ "${1:-}" = --plugin-only ]; then
    plugin_only=1
    venv=${2:?usage: install.sh --plugin-only VENV}
fi

# Orthanc and its plugins, dcmtk for C-STORE/C-FIND, and Debian's Python 3.11:
# Orthanc's embedded interpreter is /usr/bin/python3, so the venv must be too.
apt_packages=(orthanc orthanc-python orthanc-dicomweb orthanc-webviewer
              python3 python3-venv)
[ -n "$plugin_only" ] || apt_packages+=(dcmtk)

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

extras=plugin
[ -n "$plugin_only" ] || extras=plugin,tryton,gnuhealth,test
stamp=$venv/.orthanc-gnuhealth-$extras
if [ ! -x "$venv/bin/python" ]; then
    /usr/bin/python3 -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ "$here/pyproject.toml" -nt "$stamp" ]; then
    echo "install.sh: installing Python packages into $venv"
    "$venv/bin/pip" install -q --upgrade pip
    if [ -n "$plugin_only" ]; then
        "$venv/bin/pip" install -q "$here[$extras]"
    else
        "$venv/bin/pip" install -q -e "$here[$extras]"
    fi
    touch "$stamp"
fi
