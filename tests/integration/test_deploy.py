"""The compose deployment's own files, run on this host without Docker.

deploy/trytond.conf and deploy/orthanc.json, with the environment
compose.yaml gives each service and the secrets and certificates
scripts/deploy_secrets.sh makes, started through the images' entry point
(scripts/docker-entrypoint.sh): trytond (`gnuhealth`, on an existing GNU
Health database: it sets the sync account's password from its file) and
Orthanc (its admin and database passwords substituted from the secret
files), Orthanc's index in PostgreSQL through orthanc-postgresql, a
database role that needs its password, trytond on https checked against
the deployment's CA by the plugin and by this test, and
scripts/healthcheck.py. The entry point's first start (creating the
database, here with health_radiology alone to keep it short), a changed
sync password taking effect at the next start, and its `upgrade` command
are tested too. What Docker itself does is left out: host names
(db, gnuhealth) become 127.0.0.1, and ports and paths are rewritten to this
test's. So is the proxy (nginx, not installed here): Orthanc is asked on
its plain HTTP port, as the proxy asks it.
"""
import base64
import configparser
import json
import re
import ssl
import subprocess
import types
import urllib.request
import xmlrpc.client
from pathlib import Path

import pytest
from ruamel.yaml import YAML

import cluster
import healthcheck
import samples
import stack
from stack import REPO, wait_until

ENTRYPOINT = REPO / 'scripts' / 'docker-entrypoint.sh'
COMPOSE = YAML(typ='safe').load((REPO / 'compose.yaml').read_text())
HOSTS = ('pacs.hospital.example', '127.0.0.1')  # what deploy_secrets.sh certifies


def _environment(service, secrets):
    """The service's environment as compose sets it: ${X:-default} gives its
    default, /run/secrets/NAME the file deploy_secrets.sh made."""
    environment = {}
    for key, value in COMPOSE['services'][service]['environment'].items():
        value = re.sub(r'\$\{\w+:-([^}]*)\}', r'\1', str(value))
        environment[key] = str(secrets / Path(value).name) \
            if value.startswith('/run/secrets/') else value
    return environment


def _secret(secrets, path):
    return str(secrets / Path(path).name)


@pytest.fixture
def postgresql():
    cluster.require_packages()
    server = stack.PostgreSQL().start()
    yield server
    server.stop()


@pytest.fixture
def secrets(tmp_path):
    folder = tmp_path / 'secrets'
    subprocess.run(['bash', REPO / 'scripts' / 'deploy_secrets.sh', *HOSTS, folder],
                   check=True, capture_output=True)
    return folder


def _password(secrets, name):
    return (secrets / name).read_text().strip()


def _databases(postgresql, secrets, template=None):
    """The deployment's role, which must give its password (db_password),
    owning GNU Health's database (a copy of `template`, else empty) and
    Orthanc's."""
    role, password = 'gnuhealth', _password(secrets, 'db_password')
    postgresql.tool('psql', '-d', 'postgres', '-c',
                    f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{password}'")
    hba = postgresql.data / 'pg_hba.conf'
    hba.write_text(f'host all {role} 127.0.0.1/32 scram-sha-256\n' + hba.read_text())
    postgresql.tool('psql', '-d', 'postgres', '-c', 'SELECT pg_reload_conf()')
    postgresql.tool('createdb', '-O', role, *(['-T', template] if template else []),
                    stack.DATABASE)
    postgresql.tool('createdb', '-O', role, 'orthanc')


def _trytond_conf(path, postgresql, port, secrets, workdir):
    conf = configparser.ConfigParser()
    conf.read(REPO / 'deploy' / 'trytond.conf')
    uri = conf['database']['uri']
    assert uri == 'postgresql://gnuhealth@db:5432/'
    conf['database']['uri'] = f'postgresql://gnuhealth@127.0.0.1:{postgresql.port}/'
    conf['database']['path'] = str(workdir)
    conf['web']['listen'] = f'127.0.0.1:{port}'
    if (stack.SAO / 'index.html').exists():
        conf['web']['root'] = str(stack.SAO)
    else:
        del conf['web']['root']
    for key in ('certificate', 'privatekey'):
        conf['ssl'][key] = _secret(secrets, conf['ssl'][key])
    with open(path, 'w') as file:
        conf.write(file)
    return path


def _orthanc_conf(path, postgresql, trytond_port, http_port, dicom_port, secrets, workdir):
    text = (REPO / 'deploy' / 'orthanc.json').read_text()
    conf = json.loads(re.sub(r'/\*.*?\*/', '', text, flags=re.S))
    conf['ServeFolders'] = {'/ohif': str(stack.OHIF)} \
        if (stack.OHIF / 'index.html').exists() else {}
    conf['PythonScript'] = str(stack.LAUNCHER)
    conf['PostgreSQL'].update(Host='127.0.0.1', Port=postgresql.port)
    conf.update(StorageDirectory=str(workdir / 'storage'), HttpPort=http_port,
                DicomPort=dicom_port)
    section = conf['GnuHealth']
    assert section['TrytonUrl'] == 'https://gnuhealth:8000/'
    section.update(TrytonUrl=f'https://127.0.0.1:{trytond_port}/',
                   TrytonCaBundle=_secret(secrets, section['TrytonCaBundle']),
                   TrytonPasswordFile=_secret(secrets, section['TrytonPasswordFile']))
    path.write_text(json.dumps(conf, indent=2))
    return path


def _trytond(workdir, postgresql, secrets, **environment):
    """trytond started by the entry point's `gnuhealth` command, with
    deploy/trytond.conf and compose's environment for the service; its
    https URL is `.url`."""
    workdir.mkdir(exist_ok=True)
    server = stack.Server()
    server.workdir, server.port = workdir, stack.free_port()
    server.url = f'https://127.0.0.1:{server.port}/'
    conf = _trytond_conf(workdir / 'trytond.conf', postgresql, server.port, secrets, workdir)
    env = dict(_environment('gnuhealth', secrets), TRYTOND_CONFIG=str(conf), **environment)
    server.process = stack.Process(
        'trytond', ['bash', ENTRYPOINT, *COMPOSE['services']['gnuhealth']['command']],
        workdir / 'trytond.log', env=stack.checkout_env(VENV=str(stack.VENV), **env)).start()
    wait_until(lambda: healthcheck.healthy(server.url), 300,
               'trytond through the entry point', server.process.popen)
    return server


def _login(trytond, secrets, login, password):
    "Log in over https, trytond's certificate checked against the deployment's CA."
    server = xmlrpc.client.ServerProxy(
        f'{trytond.url}{stack.DATABASE}/',
        context=ssl.create_default_context(cafile=str(secrets / 'tls_ca')))
    try:
        return server.common.db.login(login, {'password': password}, 'en')
    except xmlrpc.client.ProtocolError as error:
        assert error.errcode == 401, error  # a wrong password
        return None


def test_deployment_files_run_together(postgresql, secrets, tmp_path, failure_logs):
    _databases(postgresql, secrets, stack.postgresql_template(postgresql))
    work = tmp_path / 'orthanc'
    work.mkdir()
    http_port, dicom_port = stack.free_port(), stack.free_port()
    orthanc = stack.Server()
    orthanc.workdir = work
    trytond = None
    try:
        trytond = _trytond(tmp_path / 'trytond', postgresql, secrets)
        failure_logs([trytond, orthanc])
        # The entry point gave the sync account the secret file's password.
        assert _login(trytond, secrets, 'orthanc-sync',
                      _password(secrets, 'gnuhealth_sync_password'))
        conf = _orthanc_conf(work / 'orthanc.json', postgresql, trytond.port,
                             http_port, dicom_port, secrets, work)
        orthanc.process = stack.Process(
            'orthanc', ['bash', ENTRYPOINT, 'Orthanc', conf], work / 'orthanc.log',
            env=stack.checkout_env(ORTHANC_GNUHEALTH_VENV=str(stack.VENV), TCP_NODELAY='1',
                                   **_environment('orthanc', secrets))).start()
        assert wait_until(lambda: healthcheck.main([
            f'http://127.0.0.1:{http_port}/system', '--user', 'admin',
            '--password-file', str(secrets / 'orthanc_admin_password')]) == 0, 60,
            'Orthanc through the entry point', orthanc.process.popen)
        stack.store(samples.generate_study(tmp_path / 'dicom', series=1, instances=2),
                    dicom_port)
        wait_until(lambda: _query(postgresql, 'SELECT count(*) FROM '
                                  'gnuhealth_radiology_study') == ['1'],
                   60, 'the study in GNU Health')
        # Orthanc's index is in PostgreSQL.
        assert _query(postgresql, 'SELECT count(*) FROM resources WHERE resourcetype = 2',
                      'orthanc') == ['1']  # Orthanc's ResourceType_Study
        request = urllib.request.Request(f'http://127.0.0.1:{http_port}/gnuhealth/status')
        request.add_header('Authorization', 'Basic ' + base64.b64encode(
            f"admin:{_password(secrets, 'orthanc_admin_password')}".encode()).decode())
        with urllib.request.urlopen(request, timeout=30) as answer:
            status = json.load(answer)
        assert status['gnuhealth_reachable'] is True and status['last_error'] is None
    finally:
        orthanc.stop()
        if trytond:
            trytond.stop()


def test_first_start_creates_the_database_and_a_new_sync_password_takes(
        postgresql, secrets, tmp_path, failure_logs):
    _databases(postgresql, secrets)
    workdir = tmp_path / 'trytond'
    quick = {'GNUHEALTH_MODULES': 'health_radiology'}
    failure_logs([types.SimpleNamespace(workdir=workdir)])
    trytond = _trytond(workdir, postgresql, secrets, **quick)
    try:
        assert _login(trytond, secrets, 'admin', _password(secrets, 'gnuhealth_admin_password'))
        old = _password(secrets, 'gnuhealth_sync_password')
        assert _login(trytond, secrets, 'orthanc-sync', old)
        groups = _query(postgresql, "SELECT g.name FROM res_user u JOIN \"res_user-res_group\" "
                        "ug ON ug.\"user\" = u.id JOIN res_group g ON g.id = ug.\"group\" "
                        "WHERE u.login = 'orthanc-sync'")
        assert groups == ['Radiology Sync']
    finally:
        trytond.stop()
    # The secret changes (a rotation): the next start sets it, and the
    # database is not created again.
    (secrets / 'gnuhealth_sync_password').write_text('a-new-sync-password\n')
    trytond = _trytond(workdir, postgresql, secrets, **quick)
    try:
        assert _login(trytond, secrets, 'orthanc-sync', 'a-new-sync-password')
        assert _login(trytond, secrets, 'orthanc-sync', old) is None
    finally:
        trytond.stop()
    assert (workdir / 'trytond.log').read_text().count('creating GNU Health') == 1
    # `docker compose run --rm gnuhealth upgrade` (README, "Production").
    env = dict(_environment('gnuhealth', secrets), TRYTOND_CONFIG=str(workdir / 'trytond.conf'))
    subprocess.run(['bash', ENTRYPOINT, 'upgrade'], check=True, capture_output=True,
                   env=stack.checkout_env(VENV=str(stack.VENV), **env))


def _query(postgresql, sql, database=stack.DATABASE):
    return postgresql.tool('psql', '-At', '-d', database, '-c', sql).stdout.splitlines()
