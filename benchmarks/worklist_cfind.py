"""C-FIND worklist latency with 1,000 open orders, GNU Health up and down.

Starts a real trytond (GNU Health 5.0, cached template database) and a real
Orthanc with the plugin (default worklist settings), creates the orders
through GNU Health's RPC, then times modality queries: each one a new
association and one C-FIND MWL by pynetdicom, as a modality does it. The
same client is also timed without TCP_NODELAY, and dcmtk's findscu (one
process per query) for an empty and a usual query. Then it stops trytond
and times the pynetdicom queries again (answered from the cache).

    .venv/bin/python benchmarks/worklist_cfind.py [--orders 1000] [--queries 50]

Results and how to read them: docs/worklist.md.
"""
import argparse
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'scripts'))
from proteus import Model, config as proteus_config  # noqa: E402

import demo_data  # noqa: E402
import stack  # noqa: E402
from modality import ask_worklist, worklist_query  # noqa: E402

PATIENTS = 100
DAYS = 25
# Test type of each order, in turn: a quarter are CT.
MODALITIES = ['CT', 'MR', 'US', 'CT', 'XR', 'MR', 'CT', 'US', 'CT', 'DX']


def create_orders(trytond, count):
    """`count` confirmed orders for PATIENTS patients over DAYS days from
    today; returns (a patient's PUID, today as YYYYMMDD)."""
    with proteus_config.set_xmlrpc_session(
            trytond.database_url, username=stack.ADMIN[0], password=stack.ADMIN[1]) as config:
        tests = {code: demo_data.imaging_test(f'{code}-BENCH', f'{code} exam', code)
                 for code in set(MODALITIES)}
        patients = [demo_data.patient(f'Patient{n}', 'Bench', gender='f')
                    for n in range(PATIENTS)]
        first = demo_data.order(patients[0], tests['CT'])
        start = datetime.datetime.utcnow().replace(hour=8, minute=0, second=0, microsecond=0)
        Request = Model.get('gnuhealth.imaging.test.request')
        # One RPC for them all: proteus objects cost a round trip each.
        ids = Request._proxy.create([{
            'patient': patients[n % PATIENTS].id,
            'requested_test': tests[MODALITIES[n % len(MODALITIES)]].id,
            'doctor': first.doctor.id,
            'date': start + datetime.timedelta(days=(n * DAYS) // count, minutes=n % 40 * 10),
        } for n in range(count - 1)], config.context)
        Request._proxy.requested(ids, config.context)
        return patients[0].puid, start.strftime('%Y%m%d')


def pynetdicom_client(orthanc, nodelay=True):
    "ask(query) -> number of answers, by pynetdicom."
    return lambda query: len(ask_worklist(orthanc.dicom_port, query,
                                          called_aet=stack.ORTHANC_AET, nodelay=nodelay))


def findscu_client(orthanc, workdir):
    """ask(query) -> number of answers, by dcmtk's findscu with TCP_NODELAY=1,
    writing each answer to a file as a modality's software would keep it."""
    workdir = Path(workdir)
    env = dict(os.environ, TCP_NODELAY='1')

    def ask(query):
        path, answers = workdir / 'query.dcm', workdir / 'answers'
        query.save_as(path, implicit_vr=True, little_endian=True)
        answers.mkdir(exist_ok=True)
        for old in answers.iterdir():
            old.unlink()
        subprocess.run(['findscu', '-W', '-aet', 'CT1', '-aec', stack.ORTHANC_AET, '-X',
                        '-od', str(answers), '127.0.0.1', str(orthanc.dicom_port), str(path)],
                       check=True, capture_output=True, env=env)
        return len(list(answers.iterdir()))
    return ask


def time_queries(ask, queries, rounds):
    rows = []
    for name, query in queries.items():
        answers, times = None, []
        for _ in range(rounds):
            started = time.perf_counter()
            answers = ask(query)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        rows.append((name, answers, statistics.median(times),
                     times[int(len(times) * 0.95) - 1], times[-1]))
    return rows


def rss_mib(pid):
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024


def report(title, rows):
    print(f'\n{title}\n')
    print('| query | answers | median ms | p95 ms | max ms |')
    print('|---|---:|---:|---:|---:|')
    for name, answers, median, p95, worst in rows:
        print(f'| {name} | {answers} | {median:.1f} | {p95:.1f} | {worst:.1f} |')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--orders', type=int, default=1000)
    parser.add_argument('--queries', type=int, default=50, help='rounds per query')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        trytond = stack.Trytond(Path(workdir) / 'trytond', template=stack.template_database())
        orthanc = stack.Orthanc(Path(workdir) / 'orthanc', trytond.url)
        try:
            trytond.start()
            orthanc.start()
            rss_before = rss_mib(orthanc.process.pid)
            started = time.perf_counter()
            puid, today = create_orders(trytond, args.orders)
            print(f'{args.orders} orders created in {time.perf_counter() - started:.0f} s')
            status = stack.wait_until(
                lambda: (s := orthanc.get('/gnuhealth/status')['worklist'])['orders']
                == args.orders and s, 120, f'{args.orders} orders on the worklist')
            print(f"worklist load (RPC and encoding of {args.orders} orders): "
                  f"{status['load_seconds']:.2f} s; Orthanc RSS {rss_before:.0f} MiB "
                  f"before the orders, {rss_mib(orthanc.process.pid):.0f} MiB after")
            queries = {
                'none (unknown PatientID)': worklist_query(PatientID='NO-SUCH-PATIENT'),
                'CT, today': worklist_query(Modality='CT', ScheduledProcedureStepStartDate=today),
                'one patient (PatientID)': worklist_query(PatientID=puid),
                'all, today': worklist_query(ScheduledProcedureStepStartDate=today),
                'name wildcard Patient1*': worklist_query(PatientName='Bench^Patient1*'),
            }
            usual = {k: queries[k] for k in ('none (unknown PatientID)', 'CT, today')}
            report('GNU Health up', time_queries(
                pynetdicom_client(orthanc), queries, args.queries))
            report('GNU Health up, pynetdicom without TCP_NODELAY', time_queries(
                pynetdicom_client(orthanc, nodelay=False), usual, args.queries))
            report('GNU Health up, findscu (TCP_NODELAY=1, one process per query)',
                   time_queries(findscu_client(orthanc, workdir), usual, args.queries))
            trytond.stop()
            stack.wait_until(lambda: orthanc.get('/gnuhealth/status')['worklist']['last_error'],
                             60, 'the worklist noticing GNU Health is down')
            report('GNU Health stopped (answers from the cache)', time_queries(
                pynetdicom_client(orthanc), queries, args.queries))
        finally:
            orthanc.stop()
            trytond.stop()


if __name__ == '__main__':
    main()
