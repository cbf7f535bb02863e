"""A PostgreSQL database of the former schema upgrades cleanly (issue 9).

Before one record per Orthanc study, a server held a StudyInstanceUID once
(unique constraint `study_uid_unique`) and `orthanc_id` was optional. The
module as it was at FORMER_SCHEMA is activated on a private PostgreSQL 15
cluster, stores a linked study without an Orthanc ID, then this checkout's
module updates the database: the old constraint is gone, the new one is
there, the Orthanc ID is the one Orthanc computes, and the link is kept.
SQLite, which the Tryton tests use, has no constraints to drop.
"""
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'scripts'))
from stack import REPO, free_port, wait_until  # noqa: E402

# The last commit with the former schema.
FORMER_SCHEMA = 'cfbdcd5'
PG_BIN = Path('/usr/lib/postgresql/15/bin')
PYTHON = REPO / '.venv' / 'bin' / 'python'
# The ID Orthanc 1.10.1 gives pydicom's CT_small.dcm (PatientID 1CT1).
CT_SMALL = ('1CT1', '1.3.6.1.4.1.5962.1.2.1.20040119072730.12322',
            '8a8cf898-ca27c490-d0c7058c-929d0581-2bbf104d')

SCRIPT = '''
import sys
from trytond.config import config
config.update_etc(sys.argv[1])
from trytond.pool import Pool
from trytond.transaction import Transaction
Pool.start()
pool = Pool('up')
pool.init()
with Transaction().start('up', 0, context={}) as transaction:
    Party = pool.get('party.party')
    Study = pool.get('gnuhealth.radiology.study')
    patient_id, study_uid, _ = sys.argv[3:6]
    if sys.argv[2] == 'before':
        Party.create([{'name': 'Zoe', 'code': patient_id}])
        Study.push_from_pacs({'server': {'label': 'orthanc'}, 'studies': [{
            'study_uid': study_uid, 'orthanc_id': None,
            'dicom_patient_id': patient_id, 'complete': True,
            'series': [{'series_uid': '1.2',
                'instances': [{'sop_instance_uid': '1.2.1'}]}]}]})
    else:
        study, = Study.search([])
        print(study.orthanc_id, study.party.code, study.link_state,
            len(study.series))
        # The same UID under another PatientID is now a record of its own.
        Study.push_from_pacs({'server': {'label': 'orthanc'}, 'studies': [{
            'study_uid': study_uid, 'orthanc_id': 'other',
            'dicom_patient_id': 'OTHER', 'series': []}]})
        print(Study.search([], count=True))
    transaction.commit()
'''


def run(args, text=True, **kwargs):
    return subprocess.run(args, check=True, capture_output=True, text=text,
                          **kwargs)


@pytest.fixture
def postgresql():
    "A private PostgreSQL cluster with database 'up'; yields its URI"
    if not (PG_BIN / 'initdb').exists():
        pytest.skip('PostgreSQL 15 is not installed')
    # Outside pytest's tmp_path, which only root may enter.
    data = Path(tempfile.mkdtemp(prefix='pg-upgrade-'))
    # PostgreSQL refuses to run as root.
    as_user = ['su', 'postgres', '-c'] if os.geteuid() == 0 else ['sh', '-c']
    if os.geteuid() == 0:
        shutil.chown(data, 'postgres')
    port = free_port()
    run(as_user + [f'{PG_BIN}/initdb -D {data}/data -A trust -U postgres'])
    run(as_user + [f"{PG_BIN}/pg_ctl -D {data}/data -l {data}/log -w start "
                   f"-o '-p {port} -k {data} -c listen_addresses=127.0.0.1'"])
    try:
        wait_until(lambda: run([f'{PG_BIN}/pg_isready', '-h', '127.0.0.1',
                                '-p', str(port)]), 30, 'PostgreSQL')
        run(['psql', '-h', '127.0.0.1', '-p', str(port), '-U', 'postgres',
             '-c', 'CREATE DATABASE up'])
        yield f'postgresql://postgres@127.0.0.1:{port}/'
    finally:
        subprocess.run(as_user + [f'{PG_BIN}/pg_ctl -D {data}/data -m fast stop'],
                       capture_output=True)
        shutil.rmtree(data)


def test_former_schema_upgrades(postgresql, tmp_path):
    former = tmp_path / 'former'
    try:
        archive = run(['git', 'archive', FORMER_SCHEMA, 'tryton_stub_module'],
                      cwd=REPO, text=False).stdout
    except subprocess.CalledProcessError:
        pytest.skip(f'commit {FORMER_SCHEMA} (the former schema) is not in '
                    'this repository')
    tarfile.open(fileobj=io.BytesIO(archive)).extractall(former)
    conf = tmp_path / 'trytond.conf'
    conf.write_text(f'[database]\nuri = {postgresql}\n')
    script = tmp_path / 'script.py'
    script.write_text(SCRIPT)

    def trytond(module_path, *args):
        env = dict(os.environ, PYTHONPATH=str(module_path),
                   TRYTONPASSFILE=str(tmp_path / 'password'))
        return run([str(PYTHON), *args], env=env, cwd=tmp_path).stdout
    (tmp_path / 'password').write_text('admin\n')
    admin = [str(REPO / '.venv' / 'bin' / 'trytond-admin'), '-c', str(conf),
             '-d', 'up']
    trytond(former, *admin, '--all', '--email', 'admin@example.com')
    trytond(former, *admin, '-u', 'health_radiology',
            '--activate-dependencies')
    trytond(former, str(script), str(conf), 'before', *CT_SMALL)

    trytond(REPO, *admin, '-u', 'health_radiology')

    constraints = run([
        'psql', postgresql + 'up', '-At', '-c',
        "SELECT conname FROM pg_constraint WHERE contype = 'u' AND "
        "conrelid = 'gnuhealth_radiology_study'::regclass"]).stdout.split()
    assert constraints == ['gnuhealth_radiology_study_orthanc_id_unique']
    study, count = trytond(
        REPO, str(script), str(conf), 'after', *CT_SMALL).splitlines()
    assert study.split() == [CT_SMALL[2], CT_SMALL[0], 'linked', '1']
    assert count == '2'
