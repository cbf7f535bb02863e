"""The shared set-up of the cluster tests: a private PostgreSQL 15 cluster
(stack.PostgreSQL, Debian's packages) and Orthanc nodes whose index is in
it. The fixture `postgresql` is in conftest.py."""
import os
import subprocess

import pytest

import stack

PG_BIN = stack.PG_BIN
PG_INDEX = stack.PLUGIN_DIR / 'libOrthancPostgreSQLIndex.so'
PG_USER = 'orthanc'  # the cluster's superuser, owner of Orthanc's tables


def require_packages():
    """The Debian packages postgresql and orthanc-postgresql, which
    scripts/install.sh installs. Missing on a developer's machine: the test
    is skipped, saying so. Missing in CI (`CI` set, as .ci/run does): the
    test fails, since a cluster test that never runs proves nothing."""
    missing = [str(p) for p in (PG_BIN / 'initdb', PG_INDEX) if not p.exists()]
    if not missing:
        return
    why = (f'missing {", ".join(missing)}: install the Debian packages postgresql '
           f'and orthanc-postgresql (scripts/install.sh does)')
    if os.environ.get('CI'):
        pytest.fail(f'CI is set, so the cluster test must run: {why}', pytrace=False)
    pytest.skip(f'{why}; with CI set this is a failure, not a skip')


def postgresql_cluster():
    "A private PostgreSQL cluster with an `orthanc` database; its port (yielded)."
    require_packages()
    server = stack.PostgreSQL(user=PG_USER).start()
    try:
        server.createdb('orthanc')
        yield server.port
    finally:
        server.stop()


def psql(port, sql):
    "Run SQL in Orthanc's database as the superuser; its output, unaligned."
    return subprocess.run(
        [PG_BIN / 'psql', '-h', '127.0.0.1', '-p', str(port), '-U', PG_USER,
         '-d', 'orthanc', '-v', 'ON_ERROR_STOP=1', '-Atc', sql],
        check=True, capture_output=True, text=True).stdout.strip()


class ClusterNode(stack.Orthanc):
    """An Orthanc node whose index is the shared PostgreSQL database,
    connecting as `pg_user` (a role of its own lets SQL tell nodes apart)."""

    def __init__(self, *args, pg_port, storage, pg_user=PG_USER, **kwargs):
        super().__init__(*args, **kwargs)
        self.pg_port, self.storage, self.pg_user = pg_port, storage, pg_user

    def configuration(self):
        conf = super().configuration()
        conf['Plugins'].append(str(PG_INDEX))
        conf['StorageDirectory'] = str(self.storage)  # shared by the nodes
        # The Web Viewer's SQLite cache must not be shared (it locks).
        conf['WebViewer'] = {'CachePath': str(self.workdir / 'webviewer-cache')}
        conf['PostgreSQL'] = {
            'EnableIndex': True, 'EnableStorage': False, 'Host': '127.0.0.1',
            'Port': self.pg_port, 'Database': 'orthanc', 'Username': self.pg_user,
            'Password': '', 'Lock': False}  # Lock false: several nodes
        return conf
