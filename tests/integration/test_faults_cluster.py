"""Two Orthanc nodes share one PostgreSQL index (Debian's orthanc-postgresql,
a private PostgreSQL 15 cluster started here); images go to both; every
study is in GNU Health once."""
import os

import pytest
from proteus import Model

import samples
import stack
from stack import wait_until

PG_BIN = stack.PG_BIN
PG_INDEX = stack.PLUGIN_DIR / 'libOrthancPostgreSQLIndex.so'


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


@pytest.fixture
def postgresql():
    "A private PostgreSQL cluster (stack.PostgreSQL) with an `orthanc` database; its port."
    require_packages()
    server = stack.PostgreSQL().start()
    try:
        server.createdb('orthanc')
        yield server.port
    finally:
        server.stop()


class ClusterNode(stack.Orthanc):
    "An Orthanc node whose index is the shared PostgreSQL database."

    def __init__(self, *args, pg_port, storage, **kwargs):
        super().__init__(*args, **kwargs)
        self.pg_port, self.storage = pg_port, storage

    def configuration(self):
        conf = super().configuration()
        conf['Plugins'].append(str(PG_INDEX))
        conf['StorageDirectory'] = str(self.storage)  # shared by the nodes
        # The Web Viewer's SQLite cache must not be shared (it locks).
        conf['WebViewer'] = {'CachePath': str(self.workdir / 'webviewer-cache')}
        conf['PostgreSQL'] = {
            'EnableIndex': True, 'EnableStorage': False, 'Host': '127.0.0.1',
            'Port': self.pg_port, 'Database': 'orthanc', 'Username': 'orthanc',
            'Password': '', 'Lock': False}  # Lock false: several nodes
        return conf


def test_two_nodes_one_postgresql_index_no_duplicates(
        tmp_path, postgresql, trytond, gnuhealth, failure_logs):
    nodes = [ClusterNode(tmp_path / name, trytond.url, name='cluster', pg_port=postgresql,
                         storage=tmp_path / 'storage',
                         gnuhealth={'RetryMinDelay': 0.5, 'RetryMaxDelay': 2,
                                    'PollInterval': 1, 'PublicUrl': 'http://pacs:8042'})
             for name in ('node-a', 'node-b')]
    failure_logs(nodes + [trytond])
    try:
        for node in nodes:
            node.start()
        expected = set()
        for n in range(20):
            uid = f'1.2.826.0.1.3680043.8.498.4242.{n}'
            expected.add(uid)
            files = samples.generate_study(tmp_path / 'dicom' / str(n), series=1,
                                           instances=2, study_uid=uid, PatientID=f'CL-{n}')
            nodes[n % 2].store(files)
            if n % 5 == 0:  # some studies reach both nodes
                nodes[(n + 1) % 2].store(files)
        assert len(nodes[0].get('/studies')) == len(nodes[1].get('/studies')) == 20
        Study = Model.get('gnuhealth.radiology.study')

        def all_once():
            found = [s.study_uid for s in Study.find([])]
            return len(found) == 20 and set(found) == expected
        wait_until(all_once, 60, '20 studies once in GNU Health')
        # A study is first pushed while still receiving; its last instances
        # arrive with the push at StableStudy, so wait for completeness.
        wait_until(lambda: all(s.reception == 'complete' for s in Study.find([])),
                   60, 'all 20 studies complete')
        for node in nodes:
            wait_until(lambda: node.get('/gnuhealth/status')['pending'] == 0, 30, 'idle')
        assert len(Model.get('gnuhealth.radiology.instance').find([])) == 40
        assert all(not node.get('/gnuhealth/status')['failed'] for node in nodes)
    finally:
        for node in nodes:
            node.stop()
