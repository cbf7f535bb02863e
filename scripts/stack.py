"""The demo and test stack: trytond with GNU Health, and Orthanc with the plugin.

Used three ways, all with the same code so the demo is what the tests test:
  - `make demo`   -> `stack.py demo`: start, send samples, wait for Ctrl-C;
  - `make up/down`-> `stack.py up|down`: the same in the background;
  - the integration tests import `Trytond`, `Orthanc` and `template_database`.

Every process is started in its own session and stopped by its PID.
"""
import argparse
import base64
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import xmlrpc.client
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get('VENV', REPO / '.venv'))
CACHE = REPO / '.cache'
STACK = REPO / '.stack'
sys.path.insert(0, str(Path(__file__).parent))
import samples  # noqa: E402

DATABASE = 'gnuhealth'
# health_lab: lab results, which the sync account must be refused
# (tests/integration/test_least_privilege.py); in the template, so that no
# test pays for activating it.
MODULES = ['health_imaging', 'health_imaging_worklist', 'health_lab', 'health_radiology']
# Demo/test logins. They live in the cached template database; a hospital
# creates its own accounts (README, "Configuration").
ADMIN = ('admin', 'gnuhealth-admin')
SYNC = ('orthanc-sync', 'orthanc-sync-secret')
ORTHANC_ADMIN = ('orthanc', 'orthanc-admin')
# The demo's people (scripts/demo_data.py DEMO_USERS), for SAO.
CLINICIAN = ('clinician', 'clinician-demo')
RADIOLOGIST = ('radiologist', 'radiologist-demo')
UNMATCHED_PATIENT_ID = 'EXT-77812'
ORTHANC_AET = 'ORTHANC'
PLUGIN_DIR = Path('/usr/share/orthanc/plugins')
# The SAO web client, installed by scripts/install.sh, served by trytond.
SAO = CACHE / 'sao'
# OHIF, installed by scripts/install.sh (unless OHIF=0), served by Orthanc.
OHIF = Path(os.environ.get('OHIF_DIR', CACHE / 'ohif'))
LAUNCHER = REPO / 'orthanc_gnuhealth_plugin' / 'launcher' / 'orthanc_gnuhealth.py'


def checkout_env(code=REPO, **extra):
    """The environment of trytond and its tools: the module of the checkout
    `code` (by default this one) first, whatever checkout the venv's
    editable install points at."""
    path = os.pathsep.join(filter(None, [str(code), os.environ.get('PYTHONPATH')]))
    return dict(os.environ, PYTHONPATH=path, **extra)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def wait_until(check, timeout, what, process=None, interval=0.2):
    """Poll `check` every `interval` s until it returns a true value; fail
    with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f'{what}: the process exited with {process.returncode}')
        try:
            result = check()
        except (OSError, xmlrpc.client.Error, urllib.error.URLError):
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f'{what}: not ready after {timeout} s')
        time.sleep(interval)


@contextlib.contextmanager
def silent_server():
    """A stand-in for a hung trytond: it accepts connections and never
    answers. Yields its URL and the list of the connections it accepted."""
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(16)
    listener.settimeout(0.1)
    accepted, stop = [], threading.Event()

    def accept():
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue
    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f'http://127.0.0.1:{listener.getsockname()[1]}/', accepted
    finally:
        stop.set()
        thread.join(5)
        for connection in accepted:
            connection.close()
        listener.close()


class Process:
    "A child process in its own session, with its output in a log file."

    def __init__(self, name, argv, log, env=None, cwd=None):
        self.name, self.argv, self.log = name, argv, Path(log)
        self.env, self.cwd = env, cwd
        self.popen = None

    def start(self):
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, 'ab') as log:
            self.popen = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT,
                env=self.env, cwd=self.cwd, start_new_session=True)
        return self

    @property
    def pid(self):
        return self.popen.pid

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(sig)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()

    def kill(self):
        self.stop(signal.SIGKILL)


# --- PostgreSQL ------------------------------------------------------------

PG_BIN = Path('/usr/lib/postgresql/15/bin')


def _as_postgres(*argv, input=None):
    "Run a PostgreSQL tool; as the postgres user when we are root (it refuses root)."
    prefix = ['runuser', '-u', 'postgres', '--'] if os.geteuid() == 0 else []
    return subprocess.run(prefix + [str(a) for a in argv], check=True,
                          capture_output=True, text=True, input=input)


class PostgreSQL:
    """A private PostgreSQL 15 cluster (Debian's postgresql) on a free port,
    trust authentication for the superuser `user` on 127.0.0.1; stopped by
    its PID. Orthanc's index (cluster tests) and trytond both use it."""

    def __init__(self, folder=None, user='orthanc'):
        self.folder = Path(folder or tempfile.mkdtemp(prefix='stack-pg-'))
        self.user, self.port = user, free_port()
        self.data = self.folder / 'data'

    def start(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            import pwd
            postgres = pwd.getpwnam('postgres')
            os.chown(self.folder, postgres.pw_uid, postgres.pw_gid)
        _as_postgres(PG_BIN / 'initdb', '-D', self.data, '-U', self.user, '--auth=trust',
                     '-E', 'UTF8')
        _as_postgres(PG_BIN / 'pg_ctl', '-D', self.data, '-l', self.folder / 'postgresql.log',
                     '-w', '-o', f'-p {self.port} -k {self.folder} '
                     f'-c listen_addresses=127.0.0.1', 'start')
        return self

    @property
    def uri(self):
        return f'postgresql://{self.user}@127.0.0.1:{self.port}/'

    def tool(self, name, *args, input=None):
        return _as_postgres(PG_BIN / name, '-h', '127.0.0.1', '-p', self.port,
                            '-U', self.user, *args, input=input)

    def createdb(self, name, template=None):
        self.tool('createdb', *(['-T', template] if template else []), name)

    def stop(self):
        if not (self.data / 'postmaster.pid').exists():
            return
        _as_postgres(PG_BIN / 'pg_ctl', '-D', self.data, '-m', 'fast', '-w', 'stop')
        shutil.rmtree(self.folder, ignore_errors=True)


# --- trytond ---------------------------------------------------------------

def trytond_conf(directory, port, database_dir, tls=None, database_uri='sqlite://'):
    """`tls`: (certificate, private key) PEM files: trytond serves https.
    `database_uri`: sqlite:// (files in `database_dir`) or a PostgreSQL URI."""
    path = Path(directory) / 'trytond.conf'
    path.write_text(
        '[database]\n'
        f'uri = {database_uri}\n'
        f'path = {database_dir}\n'
        '[web]\n'
        f'listen = 127.0.0.1:{port}\n'
        + (f'root = {SAO}\n' if (SAO / 'index.html').exists() else '') +
        '[session]\n'
        # Demo logins are short-lived in a browser; the sync account's session
        # is renewed by the plugin when it expires.
        'timeout = 3600\n'
        + (f'[ssl]\ncertificate = {tls[0]}\nprivatekey = {tls[1]}\n' if tls else ''))
    return path


def _template_key():
    "Changes whenever the module or the installed GNU Health changes."
    digest = hashlib.sha256()
    for path in sorted((REPO / 'tryton_stub_module').rglob('*')):
        if path.is_file() and '__pycache__' not in path.parts:
            digest.update(str(path.relative_to(REPO)).encode())
            digest.update(path.read_bytes())
    digest.update(Path(__file__).read_bytes())
    digest.update((REPO / 'scripts' / 'demo_data.py').read_bytes())
    freeze = subprocess.run([VENV / 'bin' / 'pip', 'freeze'], check=True,
                            capture_output=True, text=True).stdout
    digest.update(freeze.encode())
    return digest.hexdigest()[:16]


def template_database():
    """The SQLite file of a database with GNU Health and health_radiology.

    Creating it takes about a minute, so it is cached under .cache/ and copied
    for each run; the key covers the module's files and the installed packages.
    """
    target = CACHE / f'{DATABASE}-{_template_key()}.sqlite'
    if target.exists():
        return target
    CACHE.mkdir(exist_ok=True)
    work = CACHE / f'build-{os.getpid()}'
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    (work / f'{DATABASE}.sqlite').touch()
    _build_database(trytond_conf(work, free_port(), work), DATABASE, work)
    os.replace(work / f'{DATABASE}.sqlite', target)
    shutil.rmtree(work)
    for old in CACHE.glob(f'{DATABASE}-*.sqlite'):
        if old != target:
            old.unlink()
    return target


def _build_database(conf, database, work):
    "GNU Health with MODULES and the demo/test accounts, in an empty database."
    (work / 'password').write_text(ADMIN[1])
    env = checkout_env(TRYTONPASSFILE=str(work / 'password'))
    subprocess.run(
        [VENV / 'bin' / 'trytond-admin', '-c', conf, '-d', database, '--all',
         '--activate-dependencies', '--email', 'admin@example.com',
         '-u', *MODULES], check=True, env=env)
    subprocess.run(
        [VENV / 'bin' / 'python', REPO / 'scripts' / 'demo_data.py',
         '--config', conf, '--database', database, 'accounts',
         '--sync-password', SYNC[1]], check=True, env=checkout_env())


PG_TEMPLATE = f'{DATABASE}_template'


def postgresql_template(postgresql):
    """Database PG_TEMPLATE in the cluster: GNU Health as template_database()
    has it, for CREATE DATABASE ... TEMPLATE (a copy in about a second).
    Restored from a cached SQL dump (same key as the SQLite template), or
    built once with trytond-admin and dumped."""
    dump = CACHE / f'{DATABASE}-{_template_key()}.postgresql.sql'
    postgresql.createdb(PG_TEMPLATE)
    if dump.exists():
        postgresql.tool('psql', '-q', '-v', 'ON_ERROR_STOP=1', '-d', PG_TEMPLATE,
                        input=dump.read_text())
        return PG_TEMPLATE
    CACHE.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix='pg-build-', dir=CACHE))
    _build_database(trytond_conf(work, free_port(), work, database_uri=postgresql.uri),
                    PG_TEMPLATE, work)
    text = postgresql.tool('pg_dump', '--no-owner', PG_TEMPLATE).stdout
    dump.with_suffix('.tmp').write_text(text)
    os.replace(dump.with_suffix('.tmp'), dump)
    shutil.rmtree(work)
    for old in CACHE.glob(f'{DATABASE}-*.postgresql.sql'):
        if old != dump:
            old.unlink()
    return PG_TEMPLATE


class Server:
    "A server this module started: stopped (or killed) by its PID."
    process = None

    def stop(self):
        if self.process:
            self.process.stop()

    def kill(self):
        if self.process:
            self.process.kill()


class Trytond(Server):
    """trytond serving one SQLite copy of the template database, or with
    `postgresql` (a started PostgreSQL with postgresql_template() in it) a
    copy in that cluster; over TLS with `tls` = (certificate, private key,
    CA certificate) PEM files. `code`: the folder holding the module
    (tryton_stub_module) to run, by default this checkout. `existing`: serve
    the database DATABASE the caller made in `postgresql`, no copy."""

    # The venv whose trytond serves, and its environment: the anchor
    # benchmark (benchmarks/anchor.py) runs GNU Health's own health_orthanc
    # from a venv of its own.
    venv = VENV

    def environment(self):
        return checkout_env(self.code)

    def __init__(self, workdir, port=None, template=None, tls=None, postgresql=None,
                 code=REPO, existing=False):
        self.workdir = Path(workdir)
        self.code, self.existing = code, existing
        self.port = port or free_port()
        self.template = template
        self.tls = tls
        self.postgresql = postgresql
        self.process = None

    @property
    def url(self):
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/"

    @property
    def database_url(self):
        return f'{self.url}{DATABASE}/'

    def start(self):
        self.workdir.mkdir(parents=True, exist_ok=True)
        uri = self._database()
        conf = trytond_conf(self.workdir, self.port, self.workdir, self.tls and self.tls[:2],
                            database_uri=uri)
        self.process = Process(
            'trytond', [self.venv / 'bin' / 'trytond', '-c', conf],
            self.workdir / 'trytond.log', env=self.environment()).start()
        context = ssl.create_default_context(cafile=self.tls[2]) if self.tls else None
        wait_until(lambda: xmlrpc.client.ServerProxy(self.url, context=context)
                   .common.server.version(), 60, 'trytond', self.process.popen)
        return self

    def _database(self):
        """The database's URI, copied from the template on the first start
        (a restart keeps the data)."""
        if self.postgresql:
            marker = self.workdir / 'postgresql-database'
            cluster = str(self.postgresql.folder)
            if self.existing:
                return self.postgresql.uri
            if not marker.exists() or marker.read_text() != cluster:
                self.postgresql.tool('dropdb', '--if-exists', DATABASE)
                self.postgresql.createdb(DATABASE, template=PG_TEMPLATE)
                marker.write_text(cluster)
            return self.postgresql.uri
        database = self.workdir / f'{DATABASE}.sqlite'
        if not database.exists():
            shutil.copy(self.template or template_database(), database)
        return 'sqlite://'

    def pause(self):
        "SIGSTOP: it keeps its connections and answers nothing (a hung server)."
        self.process.popen.send_signal(signal.SIGSTOP)

    def resume(self):
        self.process.popen.send_signal(signal.SIGCONT)


# --- Orthanc ---------------------------------------------------------------

# GnuHealth.RpcTimeout of the test Orthanc (the plugin's default, written out
# because the test client's patience is derived from it).
RPC_TIMEOUT = 30
# POST /gnuhealth/studies/{id}/sync is the slowest route: it waits for the
# worker's push, itself bounded by RpcTimeout plus a few seconds
# (orthanc_bridge.py). The test client waits that long and this much more,
# so a test never gives up on a route the plugin is still allowed to answer.
CLIENT_SLACK = 30

class Orthanc(Server):
    """Orthanc with the plugin, its own storage, ports and configuration.
    `code`: the folder holding the plugin (orthanc_gnuhealth_plugin) to run,
    by default this checkout."""

    def __init__(self, workdir, trytond_url, http_port=None, dicom_port=None,
                 gnuhealth=None, stable_age=3, name='orthanc', code=REPO):
        self.workdir = Path(workdir)
        self.launcher = Path(code) / LAUNCHER.relative_to(REPO)
        self.http_port = http_port or free_port()
        self.dicom_port = dicom_port or free_port()
        self.trytond_url = trytond_url
        self.stable_age = stable_age
        self.name = name
        self.gnuhealth = gnuhealth or {}
        self.process = None

    @property
    def url(self):
        return f'http://127.0.0.1:{self.http_port}'

    def configuration(self):
        return {
            'Name': self.name,
            'StorageDirectory': str(self.workdir / 'storage'),
            'IndexDirectory': str(self.workdir / 'storage'),
            'HttpPort': self.http_port,
            'DicomPort': self.dicom_port,
            'DicomAet': ORTHANC_AET,
            'RemoteAccessAllowed': True,
            'AuthenticationEnabled': True,
            'RegisteredUsers': {ORTHANC_ADMIN[0]: ORTHANC_ADMIN[1]},
            'StableAge': self.stable_age,
            # As orthanc.json.example: UTF-8 worklist answers, and any
            # modality may query the worklist.
            'DefaultEncoding': 'Utf8',
            'DicomAlwaysAllowFindWorklist': True,
            # The Python plugin before ServeFolders: it answers OHIF's
            # pages (/ohif/viewer), ServeFolders its files (/ohif/...).
            'Plugins': [str(PLUGIN_DIR / p) for p in (
                'libOrthancPython.so', 'libOrthancDicomWeb.so',
                'libOrthancWebViewer.so', 'libServeFolders.so')],
            'ServeFolders': {'/ohif': str(OHIF)} if (OHIF / 'index.html').exists() else {},
            'PythonScript': str(self.launcher),
            'PythonVerbose': False,
            'GnuHealth': {
                'ServerLabel': self.name,
                'PublicUrl': self.url,
                'TrytonUrl': self.trytond_url,
                'TrytonDatabase': DATABASE,
                'TrytonUser': SYNC[0],
                'TrytonPassword': SYNC[1],
                'PollInterval': 2,
                'RpcTimeout': RPC_TIMEOUT,
                **self.gnuhealth,
            },
        }

    def start(self):
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / 'orthanc.json'
        conf.write_text(json.dumps(self.configuration(), indent=2))
        # Orthanc's DICOM side is dcmtk too: without TCP_NODELAY each C-FIND
        # answer waits ~40-90 ms on loopback (Nagle).
        env = dict(os.environ, ORTHANC_GNUHEALTH_VENV=str(VENV), TCP_NODELAY='1')
        self.process = Process('orthanc', ['Orthanc', conf],
                               self.workdir / 'orthanc.log', env=env).start()
        wait_until(lambda: self.get('/system'), 60, 'Orthanc',
                   self.process.popen)
        return self

    @property
    def client_timeout(self):
        "How long a request of the tests waits for Orthanc's answer, in seconds."
        return self.configuration()['GnuHealth']['RpcTimeout'] + CLIENT_SLACK

    def request(self, method, path, body=None):
        "`body`: JSON-encoded, except bytes, sent as they are."
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        token = base64.b64encode(':'.join(ORTHANC_ADMIN).encode()).decode()
        req.add_header('Authorization', 'Basic ' + token)
        with urllib.request.urlopen(req, timeout=self.client_timeout) as response:
            payload = response.read()
        return json.loads(payload) if payload else None

    def get(self, path):
        return self.request('GET', path)

    def post(self, path, body=None):
        return self.request('POST', path, body if body is not None else {})

    def delete(self, path):
        return self.request('DELETE', path)

    def store(self, files):
        "Send files by C-STORE with dcmtk's storescu, as a modality would."
        store(files, self.dicom_port)


def store(files, port, host='127.0.0.1', aet=ORTHANC_AET):
    # Without TCP_NODELAY, Debian's dcmtk waits ~90 ms per message (Nagle).
    env = dict(os.environ, TCP_NODELAY='1')
    subprocess.run(['/usr/bin/storescu', '-aec', aet, host, str(port),
                    *map(str, files)], check=True, env=env,
                   capture_output=True)


# --- the command line: demo / up / down ------------------------------------

def _ports():
    return (int(os.environ.get('TRYTON_PORT', 8000)),
            int(os.environ.get('ORTHANC_HTTP_PORT', 8042)),
            int(os.environ.get('ORTHANC_DICOM_PORT', 4242)))


def _start_postgresql():
    "`up --db postgresql`: a fresh cluster under .stack/, GNU Health copied in."
    postgresql = PostgreSQL(STACK / 'postgresql').start()
    postgresql_template(postgresql)
    return postgresql


def _start_stack(db='sqlite'):
    tryton_port, http_port, dicom_port = _ports()
    STACK.mkdir(exist_ok=True)
    if db == 'postgresql':
        trytond = Trytond(STACK / 'trytond', tryton_port, postgresql=_start_postgresql())
        return _start_servers(trytond, http_port, dicom_port)
    # The demo keeps its database between runs, unless the template changed
    # (new module code or accounts): then it starts from the new one.
    template = template_database()
    marker = STACK / 'trytond' / 'template'
    if not marker.exists() or marker.read_text() != template.name:
        (STACK / 'trytond' / f'{DATABASE}.sqlite').unlink(missing_ok=True)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(template.name)
    trytond = Trytond(STACK / 'trytond', tryton_port, template=template)
    return _start_servers(trytond, http_port, dicom_port)


def _start_servers(trytond, http_port, dicom_port):
    orthanc = Orthanc(STACK / 'orthanc', trytond.url, http_port, dicom_port,
                      stable_age=10)
    for server in (trytond, orthanc):
        try:
            server.start()
        finally:
            # Recorded even when start fails, so `down` still stops it.
            if server.process and server.process.popen:
                with open(STACK / 'pids', 'a') as pids:
                    pids.write(f'{server.process.pid}\n')
    (STACK / 'stack.env').write_text(''.join(f'{k}={v}\n' for k, v in {
        'ORTHANC_URL': orthanc.url,
        'ORTHANC_USER': ORTHANC_ADMIN[0],
        'ORTHANC_PASSWORD': ORTHANC_ADMIN[1],
        'ORTHANC_DICOM_PORT': dicom_port,
        'ORTHANC_AET': ORTHANC_AET,
        'TRYTON_URL': trytond.url,
        'TRYTON_DB': DATABASE,
        'TRYTON_USER': ADMIN[0],
        'TRYTON_PASSWORD': ADMIN[1],
    }.items()))
    return trytond, orthanc


def demo_records(trytond):
    "Create the demo patients and orders in a running trytond, as admin."
    import demo_data
    from proteus import config as proteus_config
    with proteus_config.set_xmlrpc_session(
            trytond.database_url, username=ADMIN[0], password=ADMIN[1]):
        return demo_data.records()


def send_demo_studies(orthanc, patients, directory):
    """Send the sample studies: one per demo patient that has one (with its
    PUID, and its order's code as accession when asked), one that matches
    no one, pydicom's real files and a generated 3-series CT. Their UIDs
    are fixed, so a demo started again resends the same studies."""
    directory = Path(directory)
    files = []
    for number, patient in enumerate(patients):
        if not patient['study']:
            continue
        files += samples.generate_study(
            directory / f'patient-{number}', series=2, instances=5,
            seed=f"demo {patient['puid']}",
            SpecificCharacterSet='ISO_IR 192', PatientID=patient['puid'],
            PatientName=f"{patient['lastname']}^{patient['name']}",
            AccessionNumber=patient['request'] if patient['accession'] else None,
            StudyDescription=patient['study'])
    files += samples.generate_study(
        directory / 'unmatched', series=1, instances=3, seed='demo unmatched',
        PatientID=UNMATCHED_PATIENT_ID, PatientName='Walk-in^Unknown',
        AccessionNumber=None, StudyDescription='CT chest, walk-in (no order)')
    files += samples.real_samples() + samples.generate_study(
        directory / 'generated', series=3, instances=20, seed='demo generated',
        PatientName='Demo^Generated', PatientID='DEMO-0001',
        StudyDescription='Generated CT, 3 series')
    orthanc.store(files)
    return len(files)


def _send_samples(orthanc, trytond):
    return send_demo_studies(orthanc, demo_records(trytond), STACK / 'samples')


def _ohif_banner(orthanc):
    if orthanc.configuration()['ServeFolders']:
        return f'{orthanc.url}/ohif/  (same login; the studies link to it)'
    return 'not installed (scripts/install.sh installs it unless OHIF=0)'


def _banner(orthanc, trytond, sent):
    return (f'\nSent {sent} sample instances by C-STORE.\n'
            f'Orthanc Explorer: {orthanc.url}/app/explorer.html  '
            f'(login {ORTHANC_ADMIN[0]} / {ORTHANC_ADMIN[1]})\n'
            f'OHIF viewer:      {_ohif_banner(orthanc)}\n'
            f'Orthanc DICOM:    AET {ORTHANC_AET} on port {orthanc.dicom_port} '
            f'(C-STORE; worklist C-FIND: docs/worklist.md)\n'
            f'Sync status:      {orthanc.url}/gnuhealth/status\n'
            f'GNU Health RPC:   {trytond.url}  database {DATABASE}\n'
            f'GNU Health web:   {trytond.url}  (SAO; database {DATABASE})\n'
            f'  administrator   {ADMIN[0]} / {ADMIN[1]}\n'
            f'  clinician       {CLINICIAN[0]} / {CLINICIAN[1]}\n'
            f'  radiology staff {RADIOLOGIST[0]} / {RADIOLOGIST[1]}\n'
            f'Logs and data:    {STACK}/\n')


def down():
    if (STACK / 'postgresql' / 'data' / 'postmaster.pid').exists():
        PostgreSQL(STACK / 'postgresql').stop()
    pids = STACK / 'pids'
    if not pids.exists():
        return
    for pid in map(int, pids.read_text().split()):
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.killpg(pid, signal.SIGKILL)
    pids.unlink()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('command', choices=['demo', 'up', 'down', 'template'])
    parser.add_argument('--db', choices=['sqlite', 'postgresql'], default='sqlite',
                        help="trytond's database: SQLite (default) or a private "
                             "PostgreSQL 15 cluster under .stack/postgresql")
    arguments = parser.parse_args(argv)
    command = arguments.command
    if command == 'template':
        print(template_database())
        return
    down()
    if command == 'down':
        return
    try:
        trytond, orthanc = _start_stack(arguments.db)
        print(_banner(orthanc, trytond, _send_samples(orthanc, trytond)), flush=True)
    except BaseException:
        down()
        raise
    if command == 'up':
        print(f'Stop it with `make down`. Settings: {STACK}/stack.env')
        return
    print('Press Ctrl-C to stop.', flush=True)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print('Stopping.')
    finally:
        down()

if __name__ == '__main__':
    main()
