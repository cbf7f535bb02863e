"""compose.yaml, the production deployment, without a Docker engine: it
follows the compose specification, everything it and the Dockerfile name
exists (build contexts and targets, mounted files, secret files as
scripts/deploy_secrets.sh makes them, the scripts the images run), those
scripts parse (`bash -n`, Python's compiler), and the configurations the
services get agree with each other and with the plugin's settings."""
import configparser
import json
import os
import py_compile
import re
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[2]
SOURCE = '/opt/orthanc-gnuhealth/src/'  # where the Dockerfile copies the checkout
COMPOSE = YAML(typ='safe').load((REPO / 'compose.yaml').read_text())
DOCKERFILE = (REPO / 'Dockerfile').read_text()
ENTRYPOINT = REPO / 'scripts' / 'docker-entrypoint.sh'


def _services():
    return COMPOSE['services'].items()


def _in_repo(path):
    "A path of the checkout as an image or compose.yaml names it."
    path = str(path)
    return REPO / (path[len(SOURCE):] if path.startswith(SOURCE) else path)


def _json_with_comments(path):
    return json.loads(re.sub(r'/\*.*?\*/', '', path.read_text(), flags=re.S))


def test_compose_file_follows_the_compose_specification():
    result = subprocess.run(
        [sys.executable, '-m', 'check_jsonschema', '--builtin-schema',
         'vendor.compose-spec', str(REPO / 'compose.yaml')],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_file_the_dockerfile_copies_and_runs_exists_and_parses():
    sources = []
    for line in DOCKERFILE.splitlines():
        words = line.split()
        if words and words[0] in ('COPY', 'ADD'):
            sources += [w for w in words[1:-1] if not w.startswith('--')]
    assert sources, 'the Dockerfile copies nothing'
    for source in sources:
        assert (REPO / source).exists(), f'the Dockerfile copies {source}: missing'
    scripts = set(re.findall(rf'{SOURCE}([\w./-]+\.sh)', DOCKERFILE))
    assert {'scripts/install.sh', 'scripts/docker-entrypoint.sh'} <= scripts
    for script in scripts:
        _bash_n(REPO / script)


def _bash_n(path):
    assert path.is_file(), f'{path}: missing'
    result = subprocess.run(['bash', '-n', str(path)], capture_output=True, text=True)
    assert result.returncode == 0, f'bash -n {path}: {result.stderr}'


def test_every_build_and_mounted_file_of_compose_exists():
    stages = re.findall(r'^FROM \S+ AS (\S+)$', DOCKERFILE, flags=re.M)
    for name, service in _services():
        build = service.get('build')
        if build:
            context = REPO / build['context']
            assert context.is_dir(), f'{name}: build context {context}'
            assert (context / build['dockerfile']).is_file(), name
            assert build['target'] in stages, f'{name}: no stage {build["target"]}'
        for volume in service.get('volumes', []):
            source = volume.split(':')[0]
            if source.startswith('.'):
                assert (REPO / source).is_file(), f'{name} mounts {source}: missing'
                if source.endswith('.sh'):
                    _bash_n(REPO / source)
        # The scripts the containers run: health checks, the entry point's command.
        for word in service.get('healthcheck', {}).get('test', []):
            if word.startswith(SOURCE):
                assert _in_repo(word).is_file(), f'{name}: {word} missing'
                if word.endswith('.py'):
                    py_compile.compile(_in_repo(word), doraise=True)


def test_secrets_are_files_made_by_deploy_secrets_and_kept_out_of_images(tmp_path):
    _bash_n(REPO / 'scripts' / 'deploy_secrets.sh')
    secrets = _deploy_secrets(tmp_path)
    for name, secret in COMPOSE['secrets'].items():
        path = Path(secret['file'])
        assert path.parent == Path('secrets'), f'{name}: {path} outside ./secrets'
        assert (secrets / path.name).is_file(), f'deploy_secrets.sh does not make {path}'
        assert (secrets / path.name).stat().st_mode & 0o077 == 0, f'{path} readable by all'
    expanded = re.search(r'for name in ([^;]*); do', ENTRYPOINT.read_text()).group(1).split()
    used = {s for _, service in _services() for s in service.get('secrets', [])}
    assert used == set(COMPOSE['secrets']), 'a secret is defined and unused, or the reverse'
    for name, service in _services():
        for key, value in service.get('environment', {}).items():
            # A password goes through a file (NAME_FILE), never as a value.
            assert 'PASSWORD' not in key or key.endswith('_FILE'), f'{name}: {key}'
            if key.endswith('_FILE'):
                assert Path(value).name in service['secrets'], f'{name}: {key}={value}'
                # db: the postgres image reads its own POSTGRES_PASSWORD_FILE.
                assert name == 'db' or key[:-len('_FILE')] in expanded, \
                    f'the entry point ignores {key}'
    # COPY . copies the checkout: the secrets must stay out of the images.
    assert 'secrets' in (REPO / '.dockerignore').read_text().split()
    assert '/secrets/' in (REPO / '.gitignore').read_text().split()


def _deploy_secrets(tmp_path):
    subprocess.run(['bash', str(REPO / 'scripts' / 'deploy_secrets.sh'),
                    'pacs.hospital.example', 'gnuhealth.hospital.example',
                    str(tmp_path / 'secrets')], check=True, capture_output=True)
    return tmp_path / 'secrets'


def _environment(service):
    "A service's environment as compose gives it, with the defaults of ${X:-default}."
    return {key: re.sub(r'\$\{\w+:-([^}]*)\}', r'\1', str(value))
            for key, value in COMPOSE['services'][service]['environment'].items()}


def _secret_path(secrets, path):
    return str(secrets / Path(path).name) if str(path).startswith('/run/secrets/') else path


def test_orthanc_configuration_holds_together(tmp_path):
    from orthanc_gnuhealth_plugin.config import parse_settings
    service = COMPOSE['services']['orthanc']
    mounted = dict(v.split(':')[:2] for v in service['volumes'])
    configuration = _json_with_comments(REPO / _source_of(mounted, '/etc/orthanc/orthanc.json'))
    # Debian's packages install.sh installs (as on this machine) provide the plugins.
    for plugin in configuration['Plugins']:
        assert Path(plugin).is_file(), plugin
    assert any('PostgreSQLIndex' in p for p in configuration['Plugins'])
    index = configuration['PostgreSQL']
    assert index['EnableIndex'] and index['Host'] == 'db' and index['Port'] == 5432
    assert index['Username'] == _environment('db')['POSTGRES_USER']
    created = (REPO / _source_of(dict(v.split(':')[:2] for v in
                                      COMPOSE['services']['db']['volumes']),
                                 '/docker-entrypoint-initdb.d/orthanc.sql')).read_text()
    assert f'CREATE DATABASE {index["Database"]} ' in created
    assert configuration['StorageDirectory'] in mounted.values()
    # Every ${NAME} Orthanc substitutes is set, by compose or by a NAME_FILE.
    environment = _environment('orthanc')
    text = json.dumps(configuration)
    for name in re.findall(r'\$\{(\w+)\}', text):
        assert name in environment or f'{name}_FILE' in environment, name
    # The plugin's own check of its section, with the secrets where compose
    # mounts them and the values compose gives.
    secrets = _deploy_secrets(tmp_path)
    text = re.sub(r'\$\{(\w+)\}', lambda m: environment.get(m.group(1), 'secret'), text)
    section = {key: _secret_path(secrets, value)
               for key, value in json.loads(text)['GnuHealth'].items()}
    warnings = []
    settings = parse_settings(section, warn=warnings.append)
    assert warnings == []
    assert settings.tryton_url == 'https://gnuhealth:8000/'
    assert settings.tryton_password == (secrets / 'gnuhealth_sync_password').read_text().strip()
    assert settings.public_url == 'https://localhost:8042'
    assert Path(_secret_path(secrets, section['TrytonCaBundle'])).is_file()
    # Orthanc's own https crashes on Debian bookworm (deploy/nginx.conf): off.
    assert not configuration.get('SslEnabled')


def test_https_proxy_serves_orthanc_with_its_secret_certificate():
    service = COMPOSE['services']['proxy']
    mounted = dict(v.split(':')[:2] for v in service['volumes'])
    conf = (REPO / _source_of(mounted, '/etc/nginx/conf.d/default.conf')).read_text()
    for key in ('ssl_certificate', 'ssl_certificate_key'):
        path = re.search(rf'^\s*{key} (\S+);', conf, flags=re.M).group(1)
        assert Path(path).name in service['secrets'], key
    orthanc = _json_with_comments(REPO / 'deploy' / 'orthanc.json')
    assert f'proxy_pass http://orthanc:{orthanc["HttpPort"]};' in conf
    published = [port.split(':')[0] for port in service['ports']]
    assert re.search(rf'^\s*listen {published[0]} ssl;', conf, flags=re.M)
    # Users reach Orthanc's web side through the proxy only.
    assert not [p for p in COMPOSE['services']['orthanc']['ports']
                if p.endswith(f':{orthanc["HttpPort"]}')]


def _source_of(mounted, target):
    "The file of the checkout mounted at `target`."
    [source] = [s for s, t in mounted.items() if t == target]
    return source


def test_trytond_configuration_holds_together():
    service = COMPOSE['services']['gnuhealth']
    mounted = dict(v.split(':')[:2] for v in service['volumes'])
    environment = _environment('gnuhealth')
    conf = configparser.ConfigParser()
    conf.read(REPO / _source_of(mounted, environment['TRYTOND_CONFIG']))
    uri = conf['database']['uri']
    assert uri == f'postgresql://{_environment("db")["POSTGRES_USER"]}@db:5432/', \
        'no password in the URI: libpq reads PGPASSWORD'
    assert 'PGPASSWORD_FILE' in environment
    assert conf['database']['path'] in mounted.values()
    for key in ('certificate', 'privatekey'):
        assert Path(conf['ssl'][key]).name in service['secrets'], key
    # SAO where the gnuhealth stage of the Dockerfile installs it.
    assert f'SAO_DIR={conf["web"]["root"]}' in DOCKERFILE
    assert conf['web']['listen'].endswith(':8000')
    assert environment['GNUHEALTH_DATABASE'] == 'gnuhealth' == _environment('db')['POSTGRES_DB']


def test_entrypoint_reads_secret_files_into_the_environment(tmp_path):
    _bash_n(ENTRYPOINT)
    secret = tmp_path / 'db_password'
    secret.write_text('s3cret value\n')
    env = dict(os.environ, PGPASSWORD_FILE=str(secret))
    out = subprocess.run(['bash', str(ENTRYPOINT), 'env'], env=env, check=True,
                         capture_output=True, text=True).stdout.splitlines()
    assert 'PGPASSWORD=s3cret value' in out
    assert not [line for line in out if line.startswith('PGPASSWORD_FILE=')]
    env['PGPASSWORD_FILE'] = str(tmp_path / 'absent')
    result = subprocess.run(['bash', str(ENTRYPOINT), 'env'], env=env,
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert f'PGPASSWORD_FILE={tmp_path / "absent"}: no such readable file' in result.stderr


@pytest.mark.parametrize('user, expected', [('admin', 0), ('intruder', 1)])
def test_healthcheck_answers_by_its_exit_code(tmp_path, user, expected):
    import base64
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            good = 'Basic ' + base64.b64encode(b'admin:pw').decode()
            self.send_response(200 if self.headers.get('Authorization') == good else 401)
            self.end_headers()

        def log_message(self, *args):
            pass
    server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    (tmp_path / 'password').write_text('pw\n')
    try:
        result = subprocess.run(
            [sys.executable, str(REPO / 'scripts' / 'healthcheck.py'),
             f'http://127.0.0.1:{server.server_port}/system', '--user', user,
             '--password-file', str(tmp_path / 'password')])
    finally:
        server.shutdown()
    assert result.returncode == expected
