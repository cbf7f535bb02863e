"""Measurement 1: what the plugin costs C-STORE ingest.

The same archive is sent by storescu (one association, TCP_NODELAY=1) to a
fresh Orthanc with the plugin syncing into a fresh trytond, and to a fresh
Orthanc of the same configuration without the Python plugin; the two sides
alternate (ABBA), RUNS times each. Two layouts:
  - pinned: Orthanc and storescu on core 0, trytond on core 1 (taskset), as
    a hospital runs GNU Health on another host; the issue's target is this;
  - shared: everything on both cores.
The ratio is plugin instances/s over plain instances/s (medians). Beside
it, the CPU milliseconds Orthanc spent per instance while storescu sent
(threads included: with the plugin, its worker's share), which the other
load of a shared machine disturbs less than the rates.

    .venv/bin/python benchmarks/ingest_overhead.py [--studies 200 --series 3 --instances 10 --runs 3]
"""
import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dataset  # noqa: E402
import harness  # noqa: E402
from harness import stack  # noqa: E402

LAYOUTS = {'pinned': {'orthanc': '0', 'trytond': '1'},
           'shared': {'orthanc': None, 'trytond': None}}


def one_run(workdir, archive, with_plugin, cpus):
    """Seconds storescu took to send `archive` to a fresh Orthanc, and the
    CPU seconds Orthanc used meanwhile."""
    trytond = orthanc = None
    try:
        if with_plugin:
            trytond = stack.Trytond(workdir / 'trytond').start()
            harness.pin(trytond.process.pid, cpus['trytond'])
            orthanc = stack.Orthanc(workdir / 'orthanc', trytond.url)
        else:
            orthanc = harness.PlainOrthanc(workdir / 'orthanc', 'http://127.0.0.1:9/')
        orthanc.start()
        harness.pin(orthanc.process.pid, cpus['orthanc'])
        cpu = harness.cpu_seconds(orthanc.process.pid)
        seconds = harness.store_directory(archive, orthanc.dicom_port, cpus['orthanc'])
        return seconds, harness.cpu_seconds(orthanc.process.pid) - cpu
    finally:
        for server in (orthanc, trytond):
            if server is not None:
                server.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    dataset.add_archive_arguments(parser)
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--layouts', default='pinned,shared')
    args = parser.parse_args(argv)
    stack.template_database()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        archive = tmp / 'archive'
        count = sum(map(len, dataset.generate(archive, args.studies, args.series,
                                              args.instances)))
        result = {'instances': count, 'layouts': {}}
        for layout in args.layouts.split(','):
            seconds, cpu_ms = {'plain': [], 'plugin': []}, {'plain': [], 'plugin': []}
            for run in range(args.runs):
                sides = ['plain', 'plugin'] if run % 2 == 0 else ['plugin', 'plain']
                for side in sides:
                    taken, cpu = one_run(tmp / f'{layout}-{run}-{side}', archive,
                                         side == 'plugin', LAYOUTS[layout])
                    seconds[side].append(taken)
                    cpu_ms[side].append(cpu / count * 1000)
                    print(f'{layout} run {run} {side}: {count / taken:.0f} instances/s, '
                          f'Orthanc CPU {cpu / count * 1000:.2f} ms/instance', flush=True)
            rates = {side: [count / s for s in values] for side, values in seconds.items()}
            result['layouts'][layout] = {
                'instances_per_s': {side: harness.summary(v) for side, v in rates.items()},
                'ratio': round(harness.summary(rates['plugin'])['median']
                               / harness.summary(rates['plain'])['median'], 3),
                'orthanc_cpu_ms_per_instance': {side: harness.summary(v)
                                                for side, v in cpu_ms.items()},
                'load_average_after': harness.machine()['load_average'],
            }
        harness.write_result('ingest_overhead', result)


if __name__ == '__main__':
    main()
