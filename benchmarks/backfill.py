"""Measurement 3: backfill of an archive into an empty GNU Health.

The archive grows in steps (SIZES studies, S series x I instances each);
after each step Orthanc is restarted pointing at a fresh, empty GNU Health
(the template database plus the bench patients; its change-log cursor is
already at the end, the audit is off) and `POST /gnuhealth/resync` is timed
until the status says the resync finished, with the CPU seconds Orthanc
and trytond used meanwhile. Then a second resync, with
nothing new, is timed too. Orthanc's RSS is read before and after.

    .venv/bin/python benchmarks/backfill.py [--sizes 250,500,1000,2000] [--db postgresql]

On PostgreSQL the CPU seconds of the cluster (postmaster and backends) are
reported beside trytond's.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dataset  # noqa: E402
import harness  # noqa: E402
from harness import stack  # noqa: E402

SETTINGS = {'AuditInterval': 0, 'Worklist': {'Enabled': False}}


def timed_resync(orthanc, timeout=900):
    started = time.perf_counter()
    answer = orthanc.post('/gnuhealth/resync')
    assert answer['started'], answer
    stack.wait_until(lambda: not orthanc.get('/gnuhealth/status')['resync']['running'],
                     timeout, 'the resync', interval=0.05)
    return time.perf_counter() - started


def fresh_gnuhealth(db, workdir):
    trytond = db.trytond(workdir).start()
    try:
        with harness.admin_session(trytond) as config:
            dataset.create_patients(config)
    except BaseException:
        trytond.stop()
        raise
    return trytond


def complete_in(trytond):
    with harness.admin_session(trytond):
        return harness.count_complete()


def linked_in(trytond):
    "Studies GNU Health linked to a patient (those with a bench PUID)."
    with harness.admin_session(trytond):
        return len(harness.studies([('link_state', '=', 'linked')], ['id']))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', default='250,500,1000,2000')
    parser.add_argument('--series', type=int, default=1)
    parser.add_argument('--instances', type=int, default=3)
    parser.add_argument('--name', default='backfill', help='of the JSON result')
    harness.add_database_argument(parser)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(',')]
    rows = []
    with tempfile.TemporaryDirectory() as tmp, harness.gnuhealth_database(args.db) as db:
        tmp = Path(tmp)
        trytond = fresh_gnuhealth(db, tmp / 'trytond-ingest')
        orthanc = stack.Orthanc(tmp / 'orthanc', trytond.url, gnuhealth=SETTINGS)
        try:
            orthanc.start()
            stored = 0
            for step, size in enumerate(sizes):
                # A step's new studies sync into the previous (now stale) GNU Health.
                dataset.generate(tmp / f'archive-{step}', size - stored, args.series,
                                 args.instances, start=stored)
                harness.store_directory(tmp / f'archive-{step}', orthanc.dicom_port)
                stored = size
                # Complete (StableStudy seen), so that no study is left
                # watched as receiving, to be pushed after the restart.
                stack.wait_until(lambda: complete_in(trytond) == size, 600,
                                 'the archive complete in GNU Health', interval=1)
                orthanc.stop()
                trytond.stop()
                trytond = fresh_gnuhealth(db, tmp / f'trytond-{size}')
                orthanc = stack.Orthanc(tmp / 'orthanc', trytond.url, gnuhealth=SETTINGS)
                orthanc.start()
                harness.wait_synced(orthanc)
                assert complete_in(trytond) == 0, 'GNU Health is not empty before the resync'
                rss_before = harness.rss_mib(orthanc.process.pid)
                pids = {'orthanc': orthanc.process.pid, 'trytond': trytond.process.pid,
                        **db.cpu_pids()}
                cpu = {k: harness.cpu_seconds(p, k == 'postgresql') for k, p in pids.items()}
                seconds = timed_resync(orthanc)
                cpu = {k: round(harness.cpu_seconds(p, k == 'postgresql') - cpu[k], 2)
                       for k, p in pids.items()}
                rss_after = harness.rss_mib(orthanc.process.pid)
                in_gnuhealth = complete_in(trytond)
                linked = linked_in(trytond)
                again = timed_resync(orthanc)
                rss_again = harness.rss_mib(orthanc.process.pid)
                rows.append({'studies': size, 'seconds': round(seconds, 3),
                             'studies_per_s': round(size / seconds, 1),
                             'ms_per_study': round(seconds / size * 1000, 3),
                             'complete_in_gnuhealth': in_gnuhealth,
                             'linked_to_a_patient': linked,
                             'resync_nothing_new_s': round(again, 3),
                             # Where the time goes: CPU seconds of each side.
                             'cpu_s': cpu,
                             'orthanc_rss_mib': {'before': round(rss_before, 1),
                                                 'after': round(rss_after, 1),
                                                 'after_second_resync': round(rss_again, 1)},
                             'load_average': harness.machine()['load_average']})
                print(rows[-1], flush=True)
                assert in_gnuhealth == size, f'{in_gnuhealth} of {size} studies in GNU Health'
            first, last = rows[0], rows[-1]
            harness.write_result(db.result_name(args.name), {
                'database': db.kind, 'series': args.series, 'instances': args.instances,
                'steps': rows,
                'per_study_cost_ratio_last_to_first': round(
                    last['ms_per_study'] / first['ms_per_study'], 3)}, orthanc)
        finally:
            orthanc.stop()
            trytond.stop()


if __name__ == '__main__':
    main()
