"""Upgrading from release v0.1.0 (issues 9 and 14), on PostgreSQL.

v0.1.0 (the git tag) is the last release of the former schema: a server held
a StudyInstanceUID once (unique constraint `study_uid_unique`) and
`orthanc_id` was optional. Its module (`git archive` of the tag) creates
the database; its plugin, in a real Orthanc, pushes a study into its
trytond. Both stop; this checkout's module updates the database with
`trytond-admin -u health_radiology`, as docs/operations.md says; this
checkout's trytond and plugin start on the same Orthanc storage. Then:

- the rows survive: the old constraint is gone, the new one is there, a
  study stored without an Orthanc ID gets the one Orthanc computes, and its
  link to the patient is kept;
- the sync goes on from the plugin's stored cursor: a second study arrives,
  and the first is not pushed again (its description, changed in GNU Health
  after the upgrade as a marker, would be overwritten by a push).

The database holds health_radiology on plain trytond (v0.1.0 allows it),
not GNU Health's health_imaging: creating GNU Health would take a minute
more, and the sync path under test does not need it (the worklist and the
uploads then say they are not supported). SQLite, which the Tryton tests
use, has no constraints to drop.
"""
import io
import os
import subprocess
import tarfile

import pytest

import samples
import stack
from stack import REPO, wait_until

# The release and its commit: the commit is in main's history, so the test
# runs even from a clone that did not fetch tags; the tag must not move.
RELEASE, RELEASE_COMMIT = 'v0.1.0', 'cfbdcd5'
PYTHON = stack.VENV / 'bin' / 'python'
# The ID Orthanc 1.10.1 gives pydicom's CT_small.dcm (PatientID 1CT1).
CT_SMALL = ('1CT1', '1.3.6.1.4.1.5962.1.2.1.20040119072730.12322',
            '8a8cf898-ca27c490-d0c7058c-929d0581-2bbf104d')
MARKER = 'changed in GNU Health after the upgrade'

SCRIPT = '''
import sys
from trytond.config import config
config.update_etc(sys.argv[1])
from trytond.pool import Pool
from trytond.transaction import Transaction
Pool.start()
database = sys.argv[2]
pool = Pool(database)
pool.init()
with Transaction().start(database, 0, context={}) as transaction:
    Party = pool.get('party.party')
    Study = pool.get('gnuhealth.radiology.study')
    patient_id, study_uid, _ = sys.argv[4:7]
    if sys.argv[3] == 'before':
        # The plugin's account, as the README says: the sync group alone.
        ModelData = pool.get('ir.model.data')
        pool.get('res.user').create([{
            'login': sys.argv[7], 'name': 'Orthanc', 'password': sys.argv[8],
            'groups': [('add', [ModelData.get_id(
                'health_radiology', 'group_radiology_sync')])]}])
        Party.create([{'name': 'Zoe', 'code': patient_id}])
        Study.push_from_pacs({'server': {'label': 'orthanc'}, 'studies': [{
            'study_uid': study_uid, 'orthanc_id': None,
            'dicom_patient_id': patient_id, 'complete': True,
            'series': [{'series_uid': '1.2',
                'instances': [{'sop_instance_uid': '1.2.1'}]}]}]})
    else:
        study, = Study.search([('study_uid', '=', study_uid)])
        print(study.orthanc_id, study.party.code, study.link_state,
            len(study.series))
        # The same UID under another PatientID is now a record of its own.
        Study.push_from_pacs({'server': {'label': 'orthanc'}, 'studies': [{
            'study_uid': study_uid, 'orthanc_id': 'other',
            'dicom_patient_id': 'OTHER', 'series': []}]})
        print(Study.search([('study_uid', '=', study_uid)], count=True))
    transaction.commit()
'''


def release_code(directory):
    """The plugin and the module of RELEASE, extracted into `directory`.
    Without git metadata (a tarball) the test is skipped, except in CI, which
    runs from a clone."""
    try:
        archive = subprocess.run(
            ['git', 'archive', RELEASE_COMMIT, 'orthanc_gnuhealth_plugin',
             'tryton_stub_module'],
            cwd=REPO, check=True, capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        has_git = subprocess.run(['git', 'rev-parse', '--git-dir'], cwd=REPO,
                                 capture_output=True).returncode == 0
        if has_git:
            pytest.fail(f'git archive {RELEASE_COMMIT} ({RELEASE}): '
                        f'{error.stderr.decode().strip()}', pytrace=False)
        why = f'{REPO} has no git metadata, so no tag {RELEASE} to upgrade from'
        if os.environ.get('CI'):
            pytest.fail(f'CI is set, so the upgrade test must run: {why}', pytrace=False)
        pytest.skip(why)
    tagged = subprocess.run(['git', 'rev-parse', '--verify', '-q', RELEASE + '^{commit}'],
                            cwd=REPO, capture_output=True, text=True).stdout.strip()
    assert not tagged or tagged.startswith(RELEASE_COMMIT), (
        f'tag {RELEASE} is at {tagged}, not at the release commit {RELEASE_COMMIT}')
    tarfile.open(fileobj=io.BytesIO(archive)).extractall(directory)
    return directory


@pytest.fixture
def postgresql():
    if not (stack.PG_BIN / 'initdb').exists():
        pytest.skip('PostgreSQL 15 is not installed (scripts/install.sh installs it)')
    server = stack.PostgreSQL().start()
    yield server
    server.stop()


def test_upgrade_from_release_keeps_rows_and_cursor(postgresql, tmp_path, failure_logs):
    release = release_code(tmp_path / RELEASE)
    postgresql.createdb(stack.DATABASE)
    conf = stack.trytond_conf(tmp_path, stack.free_port(), tmp_path,
                              database_uri=postgresql.uri)
    (tmp_path / 'password').write_text(stack.ADMIN[1])
    (tmp_path / 'script.py').write_text(SCRIPT)

    def run(code, *args):
        return subprocess.run(
            [PYTHON, *args], check=True, capture_output=True, text=True, cwd=tmp_path,
            env=stack.checkout_env(code, TRYTONPASSFILE=str(tmp_path / 'password'))).stdout
    admin = [stack.VENV / 'bin' / 'trytond-admin', '-c', conf, '-d', stack.DATABASE]
    script = [tmp_path / 'script.py', conf, stack.DATABASE]
    run(release, *admin, '--all', '--email', 'admin@example.com',
        '--activate-dependencies', '-u', 'health_radiology')
    run(release, *script, 'before', *CT_SMALL, *stack.SYNC)
    first, second = (samples.generate_study(tmp_path / name, series=1, instances=2,
                                            StudyDescription=name)
                     for name in ('first', 'second'))

    # v0.1.0's plugin pushes the first study into v0.1.0's trytond.
    old = sync(tmp_path, postgresql, failure_logs, release, first, 'first')

    run(REPO, *admin, '-u', 'health_radiology')

    constraints = query(postgresql, "SELECT conname FROM pg_constraint WHERE contype = 'u' "
                        "AND conrelid = 'gnuhealth_radiology_study'::regclass")
    assert constraints == ['gnuhealth_radiology_study_orthanc_id_unique']
    study, count = run(REPO, *script, 'after', *CT_SMALL).splitlines()
    assert study.split() == [CT_SMALL[2], CT_SMALL[0], 'linked', '1']
    assert count == '2'
    query(postgresql, f"UPDATE gnuhealth_radiology_study SET description = '{MARKER}' "
          "WHERE description = 'first'")

    # This checkout's trytond and plugin, on the same Orthanc storage: the
    # plugin starts from v0.1.0's cursor and pushes the second study only.
    new = sync(tmp_path, postgresql, failure_logs, REPO, second, 'second', old['cursor'])
    assert new['cursor'] > old['cursor']
    assert query(postgresql, "SELECT description, reception FROM gnuhealth_radiology_study "
                 "WHERE description IS NOT NULL ORDER BY id") == [
        f'{MARKER}|complete', 'second|complete']


def sync(tmp_path, postgresql, failure_logs, code, files, description, cursor=0):
    """Start trytond and Orthanc with the plugin and module of `code`, check
    the plugin starts from `cursor`, store `files`, wait until GNU Health has
    their study complete, stop both; return the plugin's last status."""
    trytond = stack.Trytond(tmp_path / 'trytond', postgresql=postgresql, code=code,
                            existing=True)
    # AuditInterval (a later setting, ignored by v0.1.0): the audit would
    # push the first study again for reasons of its own; off, so that only
    # the cursor decides.
    orthanc = stack.Orthanc(tmp_path / 'orthanc', trytond.url, stable_age=1, code=code,
                            gnuhealth={'PollInterval': 0.5, 'AuditInterval': 0})
    failure_logs([orthanc, trytond])
    try:
        trytond.start()
        orthanc.start()
        started = wait_until(lambda: (status := orthanc.get('/gnuhealth/status'))['cursor']
                             is not None and status, 30, 'the plugin started')
        assert started['cursor'] >= cursor, started
        orthanc.store(files)
        wait_until(lambda: query(postgresql, "SELECT reception FROM gnuhealth_radiology_study "
                                 f"WHERE description = '{description}'") == ['complete'],
                   60, f'the study {description} complete in GNU Health')
        return wait_until(lambda: _caught_up(orthanc), 30, 'the plugin caught up')
    finally:
        orthanc.stop()
        trytond.stop()


def query(postgresql, sql):
    return postgresql.tool('psql', '-At', '-d', stack.DATABASE, '-c', sql).stdout.splitlines()


def _caught_up(orthanc):
    "The plugin's status once every change of Orthanc is in GNU Health."
    status = orthanc.get('/gnuhealth/status')
    return (status['cursor'] == status['last_change'] and not status['failed']
            and status)
