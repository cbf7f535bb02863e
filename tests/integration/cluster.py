"""The shared set-up of the cluster tests: a private PostgreSQL 15 cluster
(Debian's packages) and Orthanc nodes whose index is in it. The fixture
`postgresql` is in conftest.py."""
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import stack

PG_BIN = Path('/usr/lib/postgresql/15/bin')
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


def _as_postgres(*argv):
    prefix = ['runuser', '-u', 'postgres', '--'] if os.geteuid() == 0 else []
    return subprocess.run(prefix + [str(a) for a in argv], check=True,
                          capture_output=True, text=True)


def postgresql_cluster():
    "A private PostgreSQL cluster on a free port (yielded); stopped by its PID."
    require_packages()
    folder = Path(tempfile.mkdtemp(prefix='orthanc-pg-'))
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        postgres = pwd.getpwnam('postgres')
        os.chown(folder, postgres.pw_uid, postgres.pw_gid)
    data, port = folder / 'data', stack.free_port()
    _as_postgres(PG_BIN / 'initdb', '-D', data, '-U', PG_USER, '--auth=trust',
                 '-E', 'UTF8')
    _as_postgres(PG_BIN / 'pg_ctl', '-D', data, '-l', folder / 'postgresql.log', '-w',
                 '-o', f'-p {port} -k {folder} -c listen_addresses=127.0.0.1', 'start')
    _as_postgres(PG_BIN / 'createdb', '-h', '127.0.0.1', '-p', port, '-U', PG_USER,
                 'orthanc')
    yield port
    pid = int((data / 'postmaster.pid').read_text().split()[0])
    _as_postgres(PG_BIN / 'pg_ctl', '-D', data, '-m', 'fast', '-w', 'stop')
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        pass
    shutil.rmtree(folder, ignore_errors=True)


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
