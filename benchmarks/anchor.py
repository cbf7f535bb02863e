"""Measurement 4: GNU Health's own health_orthanc beside the push path.

One archive (dataset.py) is stored once, by storescu, into an Orthanc whose
storage both sides then read in turn, RUNS times, the sides alternating:
  - ours: Orthanc with the plugin, pointed at a fresh, empty GNU Health with
    our module; `POST /gnuhealth/resync` timed (backfill.py's functions), then
    once more with nothing new;
  - the anchor: the same storage served by a plain Orthanc (no Python
    plugin), and a trytond with `health_orthanc` (PyPI gnuhealth-orthanc
    5.0.x) from a venv of its own (ANCHOR_VENV, made from /usr/bin/python3
    and pip-installed on the first run: ~30 s, its database ~20 s). Its
    Orthanc server is added with its own "connect" wizard (URL, user,
    password), then its wizards run through proteus as the client runs
    them: Full Synchronize into an empty database, then again with nothing
    new; Get New Studies into another empty database, then again. A step
    still running after --timeout seconds is stopped (trytond is stopped)
    and reported as such.

health_orthanc aborts the whole sync on a PatientID of 9 or more characters
that matches no patient (it puts `[]` into a Many2One). Both sides' GNU
Health therefore get a patient for every PatientID of the archive, with the
study's demographics; the anchor's first Full Synchronize runs before that,
with the 10 bench patients only, to record what it does on this archive as
it is.

    .venv/bin/python benchmarks/anchor.py [--studies 200 --series 3 --instances 10 --runs 3]
"""
import argparse
import datetime
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xmlrpc.client
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import backfill  # noqa: E402
import dataset  # noqa: E402
import harness  # noqa: E402
from harness import stack  # noqa: E402
from proteus import Model, Wizard  # noqa: E402

ANCHOR_VENV = stack.CACHE / 'anchor-venv'
# gnuhealth-orthanc imports `requests` without declaring it (its client is
# pyorthanc, on httpx).
ANCHOR_PACKAGES = ['gnuhealth>=5.0,<5.1', 'gnuhealth-orthanc>=5.0,<5.1', 'requests']
ANCHOR_TEMPLATE = ANCHOR_VENV / 'gnuhealth-orthanc.sqlite'
ANCHOR_STUDY = 'gnuhealth.imaging_orthanc.study'
# (wizard, the button its user clicks)
FULL_SYNCHRONIZE = ('gnuhealth.imaging_orthanc.full_synchronize', 'synchronize')
GET_NEW_STUDIES = ('gnuhealth.imaging_orthanc.get_new_studies', 'update')
CONNECT = ('gnuhealth.imaging_orthanc.wizard.orthanc_new_connect', 'connect')
CONNECT_TIMEOUT = 60  # it reads one change from Orthanc


def anchor_venv():
    """ANCHOR_VENV with ANCHOR_PACKAGES, installed from PyPI when missing
    (or when ANCHOR_PACKAGES changed); returns the seconds that took, or 0."""
    stamp = ANCHOR_VENV / '.installed'
    wanted = '\n'.join(ANCHOR_PACKAGES)
    if stamp.exists() and stamp.read_text() == wanted:
        return 0
    print(f'anchor: installing {" ".join(ANCHOR_PACKAGES)} into {ANCHOR_VENV} '
          '(first run only)', flush=True)
    started = time.perf_counter()
    shutil.rmtree(ANCHOR_VENV, ignore_errors=True)
    subprocess.run(['/usr/bin/python3', '-m', 'venv', ANCHOR_VENV], check=True)
    subprocess.run([ANCHOR_VENV / 'bin' / 'pip', 'install', '-q', *ANCHOR_PACKAGES],
                   check=True)
    stamp.write_text(wanted)
    return time.perf_counter() - started


def anchor_template():
    """An SQLite database with health_orthanc activated (and what it depends
    on), built once with the anchor venv's trytond-admin (~20 s)."""
    if ANCHOR_TEMPLATE.exists():
        return ANCHOR_TEMPLATE
    print(f'anchor: building {ANCHOR_TEMPLATE} (first run only)', flush=True)
    work = Path(tempfile.mkdtemp(prefix='build-', dir=ANCHOR_VENV))
    (work / f'{stack.DATABASE}.sqlite').touch()
    (work / 'password').write_text(stack.ADMIN[1])
    conf = stack.trytond_conf(work, stack.free_port(), work)
    subprocess.run([ANCHOR_VENV / 'bin' / 'trytond-admin', '-c', conf, '-d', stack.DATABASE,
                    '--all', '--activate-dependencies', '--email', 'admin@example.com',
                    '-u', 'health_orthanc'], check=True,
                   env=anchor_environment(TRYTONPASSFILE=str(work / 'password')))
    os.replace(work / f'{stack.DATABASE}.sqlite', ANCHOR_TEMPLATE)
    shutil.rmtree(work)
    return ANCHOR_TEMPLATE


def anchor_environment(**extra):
    "Without PYTHONPATH: nothing of this checkout reaches the anchor."
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    return {**env, **extra}


def anchor_versions():
    script = ('import importlib.metadata as m; import json; print(json.dumps({p: m.version(p) '
              'for p in ("gnuhealth-orthanc", "gnuhealth", "trytond", "pyorthanc", "httpx", '
              '"requests")}))')
    return json.loads(subprocess.run([ANCHOR_VENV / 'bin' / 'python', '-c', script],
                                     check=True, capture_output=True, text=True).stdout)


class AnchorTrytond(stack.Trytond):
    "trytond of the anchor venv, on a copy of anchor_template()."
    venv = ANCHOR_VENV

    def environment(self):
        return anchor_environment()


def create_every_patient(config, studies):
    """A GNU Health patient for every PatientID of the archive's `studies`
    that is not a bench patient (dataset.create_patients), with the study's
    name, sex and birth date, so that both sides link every study."""
    for number in range(studies):
        tags = dataset.study_tags(number)
        if tags['PatientID'] in dataset.KNOWN_PUIDS:
            continue
        lastname, name = tags['PatientName'].split('^')
        dob = datetime.datetime.strptime(tags['PatientBirthDate'], '%Y%m%d').date()
        dataset.create_patient(config, tags['PatientID'], name, lastname,
                               tags['PatientSex'].lower(), dob)


def cpu_meter(pids):
    """A function giving the CPU seconds each of `pids` used since this call."""
    before = {name: harness.cpu_seconds(pid) for name, pid in pids.items()}
    return lambda: {name: round(harness.cpu_seconds(pid) - before[name], 2)
                    for name, pid in pids.items()}


def ours(db, workdir, orthanc_dir, studies):
    """The push path: a resync into a fresh GNU Health, then one with nothing new."""
    trytond = backfill.fresh_gnuhealth(db, workdir / 'trytond')
    orthanc = None
    try:
        with harness.admin_session(trytond) as config:
            create_every_patient(config, studies)
        orthanc = stack.Orthanc(orthanc_dir, trytond.url, gnuhealth=backfill.SETTINGS).start()
        harness.wait_synced(orthanc)
        assert backfill.complete_in(trytond) == 0, 'GNU Health is not empty before the resync'
        pids = {'orthanc': orthanc.process.pid, 'trytond': trytond.process.pid}
        cpu = cpu_meter(pids)
        seconds = backfill.timed_resync(orthanc)
        row = {'seconds': round(seconds, 3), 'studies_per_s': round(studies / seconds, 1),
               'cpu_s': cpu(), 'studies_in_gnuhealth': backfill.complete_in(trytond),
               'linked_to_a_patient': backfill.linked_in(trytond)}
        cpu = cpu_meter(pids)
        again = backfill.timed_resync(orthanc)
        return {'backfill': row, 'nothing_new': {'seconds': round(again, 3), 'cpu_s': cpu()}}
    finally:
        for server in (orthanc, trytond):
            if server is not None:
                server.stop()


def click(trytond, wizard, timeout, fill=None):
    """Open `wizard`, fill its form and click its button, as the Tryton
    client does, in a session of the admin (who is in health_orthanc's admin
    group). Returns the seconds it took (None when still running after
    `timeout`: then trytond is stopped, as nothing else ends a running
    transaction) and the error the wizard raised, if any."""
    name, button = wizard
    outcome = {'seconds': None, 'error': None}

    def run():
        try:
            with harness.admin_session(trytond) as config:
                started = time.perf_counter()
                try:
                    session = Wizard(name, config=config)
                    for field, value in (fill or {}).items():
                        setattr(session.form, field, value)
                    session.execute(button)
                except xmlrpc.client.Fault as error:  # the wizard's UserError
                    outcome['error'] = error.faultString[:500]
                outcome['seconds'] = time.perf_counter() - started
        except (OSError, xmlrpc.client.ProtocolError):  # trytond stopped at the timeout
            pass
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        trytond.stop()
        thread.join()
        return None, f'still running after {timeout:g} s: stopped'
    return outcome['seconds'], outcome['error']


def anchor_counts(trytond):
    "What health_orthanc holds: studies, series, instances, studies linked."
    with harness.admin_session(trytond) as config:
        def count(model, domain=()):
            return Model.get(model)._proxy.search_count(list(domain), config.context)
        return {'studies': count(ANCHOR_STUDY),
                'linked_to_a_patient': count(ANCHOR_STUDY, [('patient', '!=', None)]),
                'series': count('gnuhealth.imaging_orthanc.study_series'),
                'instances': count('gnuhealth.imaging_orthanc.series_instances')}


def anchor_step(trytond, orthanc, wizard, timeout, studies=None):
    """One click of `wizard`, timed, with what the database holds after it
    (nothing after an error: the wizard's transaction is rolled back).
    Stopped at the timeout, trytond is started again for the next steps."""
    cpu = cpu_meter({'orthanc': orthanc.process.pid, 'trytond': trytond.process.pid})
    seconds, error = click(trytond, wizard, timeout)
    row = {'seconds': seconds and round(seconds, 3), 'error': error}
    if seconds is None:
        trytond.start()
        return row
    row.update(cpu_s=cpu(), **anchor_counts(trytond))
    if studies and not error:
        row['studies_per_s'] = round(studies / seconds, 1)
    return row


def anchor(workdir, orthanc, studies, wizard, timeout, as_is=False):
    """A fresh GNU Health with health_orthanc, its Orthanc server added with
    its wizard; `wizard` into it empty, then again with nothing new. With
    `as_is`, first once with the bench patients only (rolled back on error)."""
    trytond = AnchorTrytond(workdir, template=anchor_template()).start()
    try:
        with harness.admin_session(trytond) as config:
            dataset.create_patients(config)
        _, error = click(trytond, CONNECT, CONNECT_TIMEOUT, fill={
            'label': 'bench', 'domain': orthanc.url, 'user': stack.ORTHANC_ADMIN[0],
            'password': stack.ORTHANC_ADMIN[1]})
        assert error is None, f'adding the Orthanc server to health_orthanc: {error}'
        result = {}
        if as_is:
            result['bench_patients_only'] = anchor_step(trytond, orthanc, wizard, timeout)
        with harness.admin_session(trytond) as config:
            create_every_patient(config, studies)
        result['empty'] = anchor_step(trytond, orthanc, wizard, timeout, studies)
        if result['empty']['seconds'] is not None:
            result['nothing_new'] = anchor_step(trytond, orthanc, wizard, timeout)
        return result
    finally:
        trytond.stop()


def anchor_side(workdir, orthanc_dir, studies, timeout):
    orthanc = harness.PlainOrthanc(orthanc_dir, 'http://127.0.0.1:9/').start()
    try:
        return {'full_synchronize': anchor(workdir / 'full', orthanc, studies,
                                           FULL_SYNCHRONIZE, timeout, as_is=True),
                'get_new_studies': anchor(workdir / 'new', orthanc, studies,
                                          GET_NEW_STUDIES, timeout)}
    finally:
        orthanc.stop()


def store_archive(db, workdir, archive, studies):
    """The archive into an Orthanc with the plugin (so that its change-log
    cursor is at the end), synced into a throwaway GNU Health; returns
    that Orthanc's folder, for both sides."""
    trytond = backfill.fresh_gnuhealth(db, workdir / 'trytond-ingest')
    orthanc = stack.Orthanc(workdir / 'orthanc', trytond.url, gnuhealth=backfill.SETTINGS)
    try:
        orthanc.start()
        harness.store_directory(archive, orthanc.dicom_port)
        stack.wait_until(lambda: backfill.complete_in(trytond) == studies, 600,
                         'the archive complete in GNU Health', interval=1)
    finally:
        orthanc.stop()
        trytond.stop()
    return orthanc.workdir


def step_value(step):
    """Seconds of a step, math.inf when stopped at the timeout, None when it
    failed (or did not run)."""
    if step is None or (step.get('error') and step['seconds'] is not None):
        return None
    return math.inf if step['seconds'] is None else step['seconds']


def median(steps):
    """Median seconds of the steps that did not fail, a step stopped at the
    timeout counting as the longest; None when they all failed."""
    values = [v for v in map(step_value, steps) if v is not None]
    return round(statistics.median(values), 3) if values else None


# name in the summary: (side, wizard or None, step)
STEPS = {'ours_backfill': ('ours', None, 'backfill'),
         'ours_nothing_new': ('ours', None, 'nothing_new'),
         'full_synchronize': ('anchor', 'full_synchronize', 'empty'),
         'full_synchronize_again': ('anchor', 'full_synchronize', 'nothing_new'),
         'get_new_studies': ('anchor', 'get_new_studies', 'empty'),
         'get_new_studies_again': ('anchor', 'get_new_studies', 'nothing_new')}


def summarize(runs, studies, timeout):
    """Medians over the runs, studies per second, and the ratios: for a
    backfill ours in studies/s over the anchor's (= its seconds over ours),
    with nothing new the anchor's seconds over ours. A step stopped at the
    timeout shows as '> TIMEOUT s', and its ratio as a lower bound."""
    seconds = {}
    for name, (side, wizard, step) in STEPS.items():
        rows = [run[side] if wizard is None else run[side][wizard] for run in runs]
        seconds[name] = median([row.get(step) for row in rows])

    def rate(name):
        value = seconds[name]
        return f'< {studies / timeout:.3g}' if value == math.inf else (
            value and round(studies / value, 1))

    def ratio(anchor_step, our_step):
        value, ours_s = seconds[anchor_step], seconds[our_step]
        if not (value and ours_s):
            return None
        return f'> {timeout / ours_s:.3g}' if value == math.inf else round(value / ours_s, 2)
    return {
        'seconds': {name: f'> {timeout:g} s' if value == math.inf else value
                    for name, value in seconds.items()},
        'studies_per_s': {name: rate(name) for name in
                          ('ours_backfill', 'full_synchronize', 'get_new_studies')},
        'ratios': {
            'backfill_vs_full_synchronize': ratio('full_synchronize', 'ours_backfill'),
            'backfill_vs_get_new_studies': ratio('get_new_studies', 'ours_backfill'),
            'full_synchronize_again_vs_ours': ratio('full_synchronize_again',
                                                    'ours_nothing_new'),
            'get_new_studies_again_vs_ours': ratio('get_new_studies_again',
                                                   'ours_nothing_new')}}


def print_table(summary):
    seconds, rates, ratios = summary['seconds'], summary['studies_per_s'], summary['ratios']
    rows = [('empty GNU Health', 'ours: resync', 'ours_backfill', 'ours_backfill', None),
            ('', 'Full Synchronize', 'full_synchronize', 'full_synchronize',
             'backfill_vs_full_synchronize'),
            ('', 'Get New Studies', 'get_new_studies', 'get_new_studies',
             'backfill_vs_get_new_studies'),
            ('nothing new', 'ours: resync', 'ours_nothing_new', None, None),
            ('', 'Full Synchronize', 'full_synchronize_again', None,
             'full_synchronize_again_vs_ours'),
            ('', 'Get New Studies', 'get_new_studies_again', None,
             'get_new_studies_again_vs_ours')]
    print('{:<18}{:<18}{:>12}{:>14}{:>16}'.format('', '', 'seconds', 'studies/s', 'ours x faster'))
    def shown(values, key):  # n/a: the step failed or did not run
        return '' if key is None else 'n/a' if values[key] is None else str(values[key])
    for what, who, step, rate, ratio in rows:
        print('{:<18}{:<18}{:>12}{:>14}{:>16}'.format(
            what, who, shown(seconds, step), shown(rates, rate), shown(ratios, ratio)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    dataset.add_archive_arguments(parser)
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--timeout', type=float, default=600,
                        help='seconds after which an anchor step is stopped')
    args = parser.parse_args(argv)
    installed_s = anchor_venv()
    anchor_template()
    # Our side on SQLite, as the anchor's.
    with tempfile.TemporaryDirectory() as tmp, harness.gnuhealth_database('sqlite') as db:
        tmp = Path(tmp)
        files = sum(map(len, dataset.generate(tmp / 'archive', args.studies, args.series,
                                              args.instances)))
        orthanc_dir = store_archive(db, tmp, tmp / 'archive', args.studies)
        runs = []
        for run in range(args.runs):
            sides = ['ours', 'anchor'] if run % 2 == 0 else ['anchor', 'ours']
            results = {'order': sides}
            for side in sides:
                workdir = tmp / f'run{run}-{side}'
                results[side] = (ours(db, workdir, orthanc_dir, args.studies) if side == 'ours'
                                 else anchor_side(workdir, orthanc_dir, args.studies,
                                                  args.timeout))
            results['load_average'] = harness.machine()['load_average']
            print(json.dumps(results), flush=True)
            runs.append(results)
        summary = summarize(runs, args.studies, args.timeout)
        print_table(summary)
        harness.write_result('anchor', {
            'studies': args.studies, 'series': args.series, 'instances': args.instances,
            'files': files, 'timeout_s': args.timeout, 'anchor_versions': anchor_versions(),
            'anchor_venv': str(ANCHOR_VENV), 'anchor_installed_in_this_run_s':
                round(installed_s, 1) if installed_s else None,
            'summary': summary, 'runs': runs})


if __name__ == '__main__':
    main()
