"""Measurement 2: how fresh GNU Health is, for studies sent one after another.

Sends STUDIES studies, each by its own storescu association, GAP seconds
apart, to Orthanc with the plugin, while a thread polls GNU Health
(search_read every POLL seconds). Per study:
  - first visible: first seen in GNU Health minus the start of its storescu
    (an upper bound of "after the first instance");
  - complete after stable: seen complete minus (end of its storescu +
    StableAge), i.e. what Orthanc, the plugin and GNU Health add to
    StableAge;
and, to tell them apart, with a second thread polling Orthanc's /changes
every POLL seconds:
  - StableStudy after stable: when Orthanc's log showed the study's
    StableStudy, minus (end of its storescu + StableAge): Orthanc's part;
  - complete after StableStudy: seen complete in GNU Health minus that:
    the plugin's and GNU Health's part (wake, read, push, commit).

    .venv/bin/python benchmarks/freshness.py [--studies 100 --stable-age 10] [--db postgresql]
"""
import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dataset  # noqa: E402
import harness  # noqa: E402
from harness import stack  # noqa: E402


class Watcher(threading.Thread):
    "Notes when each study is first seen in GNU Health, and seen complete."

    def __init__(self, trytond, poll):
        super().__init__(daemon=True)
        self.trytond, self.poll = trytond, poll
        self.seen, self.complete = {}, {}
        self.stopping = threading.Event()

    def run(self):
        with harness.admin_session(self.trytond):
            while not self.stopping.is_set():
                now = time.perf_counter()
                for row in harness.studies():
                    self.seen.setdefault(row['study_uid'], now)
                    if row['reception'] == 'complete':
                        self.complete.setdefault(row['study_uid'], now)
                self.stopping.wait(self.poll)


class ChangeWatcher(threading.Thread):
    "Notes when Orthanc's /changes log shows each study's StableStudy."

    def __init__(self, orthanc, poll):
        super().__init__(daemon=True)
        self.orthanc, self.poll = orthanc, poll
        self.stable = {}  # Orthanc study id -> perf_counter when seen
        self.stopping = threading.Event()

    def run(self):
        since = 0
        while not self.stopping.is_set():
            page = self.orthanc.get(f'/changes?since={since}&limit=1000')
            now = time.perf_counter()
            for change in page['Changes']:
                if change['ChangeType'] == 'StableStudy':
                    self.stable.setdefault(change['ID'], now)
            since = page['Last']
            if page['Done']:
                self.stopping.wait(self.poll)

    def by_uid(self):
        return {self.orthanc.get(f'/studies/{i}')['MainDicomTags']['StudyInstanceUID']: seen
                for i, seen in self.stable.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    dataset.add_archive_arguments(parser, studies=100, series=1)
    parser.add_argument('--stable-age', type=int, default=10)
    parser.add_argument('--gap', type=float, default=0.2)
    parser.add_argument('--poll', type=float, default=0.05)
    harness.add_database_argument(parser)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, harness.gnuhealth_database(args.db) as db:
        tmp = Path(tmp)
        archive = dataset.generate(tmp / 'archive', args.studies, args.series, args.instances)
        trytond = db.trytond(tmp / 'trytond').start()
        with harness.admin_session(trytond) as config:
            dataset.create_patients(config)
        orthanc = stack.Orthanc(tmp / 'orthanc', trytond.url, stable_age=args.stable_age)
        watcher = Watcher(trytond, args.poll)
        changes = ChangeWatcher(orthanc, args.poll)
        try:
            orthanc.start()
            watcher.start()
            changes.start()
            sent = {}
            for files in archive:
                uid = pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID
                started = time.perf_counter()
                harness.store_files(files, orthanc.dicom_port)
                sent[uid] = (started, time.perf_counter())
                time.sleep(args.gap)  # pacing of the modality, not a wait
            stack.wait_until(lambda: len(watcher.complete) == len(sent),
                             args.stable_age + 120, 'every study complete in GNU Health')
            result = {'database': db.kind, 'studies': args.studies, 'instances_per_study':
                      args.series * args.instances, 'stable_age': args.stable_age,
                      'poll_interval': args.poll}
            first = [watcher.seen[u] - start for u, (start, _) in sent.items()]
            complete = [watcher.complete[u] - end - args.stable_age
                        for u, (_, end) in sent.items()]
            stable = changes.by_uid()
            orthanc_late = [stable[u] - end - args.stable_age for u, (_, end) in sent.items()]
            ours = [watcher.complete[u] - stable[u] for u in sent]
            for name, values in (('first_visible_s', first),
                                 ('complete_after_stable_s', complete),
                                 ('stable_study_after_stable_s', orthanc_late),
                                 ('complete_after_stable_study_s', ours)):
                result[name] = {'p50': round(harness.percentile(values, 0.5), 3),
                                'p95': round(harness.percentile(values, 0.95), 3),
                                'max': round(max(values), 3)}
            harness.write_result(db.result_name('freshness'), result, orthanc)
        finally:
            watcher.stopping.set()
            changes.stopping.set()
            orthanc.stop()
            trytond.stop()


if __name__ == '__main__':
    main()
