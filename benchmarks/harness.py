"""What the push-path benchmarks share: servers, pinning, RSS, results.

Every measurement writes one JSON file into RESULTS (BENCH_RESULTS in the
environment, else .cache/bench/), with the machine, its load average and
the versions beside the numbers, so that a noisy run can be told apart.
"""
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'scripts'))
import stack  # noqa: E402
from proteus import Model  # noqa: E402
from proteus import config as proteus_config  # noqa: E402

RESULTS = Path(os.environ.get('BENCH_RESULTS', REPO / '.cache' / 'bench'))
STUDY = 'gnuhealth.radiology.study'
# Orthanc without the Python plugin: the same configuration otherwise.
PLAIN_PLUGINS = [str(stack.PLUGIN_DIR / p) for p in (
    'libOrthancDicomWeb.so', 'libOrthancWebViewer.so')]


class PlainOrthanc(stack.Orthanc):
    "The same Orthanc, without libOrthancPython (so without our plugin)."

    def configuration(self):
        return {**super().configuration(), 'Plugins': PLAIN_PLUGINS}


def pin(pid, cpus):
    """Pin a process and all its threads to `cpus` ("0", "1"); no-op for None.
    Threads started later inherit the affinity of the thread starting them."""
    if cpus is not None:
        subprocess.run(['taskset', '-a', '-pc', cpus, str(pid)], check=True,
                       capture_output=True)


def store_directory(directory, port, cpus=None):
    """storescu of every file under `directory`, one association, as a
    modality sends a study; returns the seconds it took."""
    argv = ['/usr/bin/storescu', '-aec', stack.ORTHANC_AET, '+sd', '+r',
            '127.0.0.1', str(port), str(directory)]
    if cpus is not None:
        argv = ['taskset', '-c', cpus, *argv]
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, env=dict(os.environ, TCP_NODELAY='1'))
    return time.perf_counter() - started


def store_files(files, port):
    "storescu of `files`, one association; returns the seconds it took."
    started = time.perf_counter()
    stack.store(files, port)
    return time.perf_counter() - started


def cpu_seconds(pid, children=False):
    """CPU seconds (user + system) a process used so far, its threads
    included; with `children`, those of its children too, living or ended
    (PostgreSQL's backends are children of its postmaster)."""
    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])  # children waited for
        for stat in Path('/proc').glob('[0-9]*/stat'):
            try:
                child = stat.read_text().rsplit(')', 1)[1].split()
            except OSError:
                continue  # ended meanwhile
            if child[1] == str(pid):
                ticks += int(child[11]) + int(child[12])
    return ticks / os.sysconf('SC_CLK_TCK')


def rss_mib(pid):
    "Resident memory of a process, MiB."
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024


DATABASES = ('sqlite', 'postgresql')


def add_database_argument(parser):
    parser.add_argument('--db', choices=DATABASES, default='sqlite',
                        help="trytond's database: SQLite (the cached template) or "
                             "PostgreSQL 15 (a private cluster the script starts)")


@contextlib.contextmanager
def gnuhealth_database(kind):
    """Yield a Database: what makes each trytond of a benchmark, on SQLite
    (a copy of the cached template) or on PostgreSQL (a private cluster
    started here, stopped at the end; each trytond gets a fresh copy of GNU
    Health's template database in it, so one trytond runs at a time)."""
    if kind == 'sqlite':
        stack.template_database()
        yield Database(kind)
        return
    server = stack.PostgreSQL().start()
    try:
        stack.postgresql_template(server)
        yield Database(kind, server)
    finally:
        server.stop()


class Database:
    def __init__(self, kind, postgresql=None):
        self.kind, self.postgresql = kind, postgresql

    def trytond(self, workdir):
        "A stack.Trytond, not started, on this database."
        return stack.Trytond(workdir, postgresql=self.postgresql)

    def result_name(self, name):
        "`name` of the JSON result; `name`_postgresql on PostgreSQL."
        return name if self.kind == 'sqlite' else f'{name}_{self.kind}'

    def cpu_pids(self):
        "The processes whose CPU is the database's own (none for SQLite)."
        if self.postgresql is None:
            return {}
        pid = int((self.postgresql.data / 'postmaster.pid').read_text().split()[0])
        return {'postgresql': pid}


@contextlib.contextmanager
def admin_session(trytond):
    with proteus_config.set_xmlrpc_session(trytond.database_url, username=stack.ADMIN[0],
                                           password=stack.ADMIN[1]) as config:
        yield config


def studies(domain=(), fields=('study_uid', 'reception')):
    "GNU Health's radiology studies as rows, in the caller's proteus session."
    Study = Model.get(STUDY)
    return Study._proxy.search_read(list(domain), 0, None, None, list(fields),
                                    Study._config.context)


def count_complete():
    return len(studies([('reception', '=', 'complete')], ['id']))


def wait_synced(orthanc, timeout=600):
    "Wait until the worker's cursor reached Orthanc's last change."
    def synced():
        status = orthanc.get('/gnuhealth/status')
        return status.get('cursor') == status.get('last_change') and not status.get('failed')
    stack.wait_until(synced, timeout, 'the plugin catching up with the change log')


def summary(values):
    "Median, min and max of a list of numbers (rounded for the JSON)."
    values = sorted(values)
    return {'median': round(statistics.median(values), 4), 'min': round(values[0], 4),
            'max': round(values[-1], 4), 'runs': [round(v, 4) for v in values]}


def percentile(values, share):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * share))]


def machine(orthanc=None):
    info = {'cores': os.cpu_count(), 'load_average': os.getloadavg(),
            'kernel': platform.release(), 'python': platform.python_version(),
            'cpu': next((line.split(':', 1)[1].strip() for line in
                         Path('/proc/cpuinfo').read_text().splitlines()
                         if line.startswith('model name')), platform.machine())}
    try:
        import trytond
        info['trytond'] = trytond.__version__
    except ImportError:
        pass
    if orthanc is not None:
        info['orthanc'] = orthanc.get('/system')['Version']
    return info


def write_result(name, result, orthanc=None):
    """Write RESULTS/name.json with the machine beside `result`."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {'measurement': name, 'at': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
               'machine': machine(orthanc), **result}
    path = RESULTS / f'{name}.json'
    path.write_text(json.dumps(payload, indent=2))
    print(f'{name}: {path}', flush=True)
    return path
