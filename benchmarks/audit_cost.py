"""What the continuous audit costs: CPU while idle, and its effect on ingest.

For each audit setting (off, the default, an aggressive one) it starts
trytond and Orthanc (scripts/stack.py), sends an archive of STUDIES studies,
waits until GNU Health has them all, then:
  - idle: the CPU seconds used by Orthanc and by trytond over IDLE seconds
    (utime + stime from /proc), as a share of one core;
  - ingest: the time `storescu` takes to send INGEST more instances, one
    association, and the time until GNU Health has them all.

Run from the checkout (results in docs/operations.md, "The audit"):
    .venv/bin/python benchmarks/audit_cost.py
"""
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'scripts'))
import samples  # noqa: E402
import stack  # noqa: E402
from proteus import Model  # noqa: E402
from proteus import config as proteus_config  # noqa: E402

STUDIES = int(os.environ.get('STUDIES', 300))
IDLE = float(os.environ.get('IDLE', 60))
INGEST_STUDIES = int(os.environ.get('INGEST_STUDIES', 50))
SETTINGS = {
    'off': {'AuditInterval': 0},
    'default (100 every 10 s)': {},
    'aggressive (100 every 1 s)': {'AuditInterval': 1},
}
BASE = {'Worklist': {'Enabled': False}}


def cpu_seconds(pid):
    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def files(directory, count, prefix):
    return [f for n in range(count)
            for f in samples.generate_study(directory / f'{prefix}{n}', series=1, instances=2,
                                            PatientID=f'{prefix}{n}')]


def studies_in_gnuhealth():
    return len(Model.get('gnuhealth.radiology.study').find([('reception', '=', 'complete')]))


def measure(name, gnuhealth, workdir, archive, ingest):
    trytond = stack.Trytond(workdir / 'trytond').start()
    orthanc = stack.Orthanc(workdir / 'orthanc', trytond.url, stable_age=2,
                            gnuhealth={**BASE, **gnuhealth})
    orthanc.start()
    try:
        with proteus_config.set_xmlrpc_session(trytond.database_url, username=stack.ADMIN[0],
                                               password=stack.ADMIN[1]):
            orthanc.store(archive)
            stack.wait_until(lambda: studies_in_gnuhealth() == STUDIES, 300, 'the archive')
            pids = {'Orthanc': orthanc.process.pid, 'trytond': trytond.process.pid}
            before = {k: cpu_seconds(p) for k, p in pids.items()}
            time.sleep(IDLE)  # a measurement window, not a wait for a condition
            idle = {k: (cpu_seconds(p) - before[k]) / IDLE for k, p in pids.items()}
            audit = orthanc.get('/gnuhealth/status')['audit']
            started = time.monotonic()
            orthanc.store(ingest)
            stored = time.monotonic() - started
            stack.wait_until(lambda: studies_in_gnuhealth() == STUDIES + INGEST_STUDIES, 300,
                             'the new studies')
            synced = time.monotonic() - started
    finally:
        orthanc.stop()
        trytond.stop()
    print(f'{name}: idle CPU Orthanc {idle["Orthanc"]:.1%}, trytond {idle["trytond"]:.1%} '
          f'of one core; audit checked {audit["checked"]}, repaired {audit["repaired"]}; '
          f'ingest of {len(ingest)} instances: storescu {stored:.2f} s '
          f'({len(ingest) / stored:.0f}/s), all complete in GNU Health after {synced:.1f} s',
          flush=True)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        archive = files(tmp / 'archive', STUDIES, 'ARCH')
        ingest = files(tmp / 'ingest', INGEST_STUDIES, 'NEW')
        print(f'{os.cpu_count()} cores; archive {STUDIES} studies x 2 instances; '
              f'idle window {IDLE:g} s', flush=True)
        for number, (name, gnuhealth) in enumerate(SETTINGS.items()):
            measure(name, gnuhealth, tmp / str(number), archive, ingest)


if __name__ == '__main__':
    main()
