"""`make bench`: every push-path measurement, one JSON result each.

Results go to .cache/bench/ (or BENCH_RESULTS); docs/benchmarks.md says how
to read them. `--tiny` runs each script on a tiny dataset (the smoke test);
`--only backfill,freshness` runs some of them. The `_postgresql` ones are
measurement 7: the same scripts with trytond on PostgreSQL 15 (`--db`).

    .venv/bin/python benchmarks/run_all.py [--tiny] [--only NAMES]
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import anchor  # noqa: E402
import backfill  # noqa: E402
import freshness  # noqa: E402
import ingest_overhead  # noqa: E402
import memory  # noqa: E402
import rest_routes  # noqa: E402

PG = ['--db', 'postgresql']
# name: (module, arguments of the full run, arguments of the tiny run or
# None: not in the tiny run)
MEASUREMENTS = {
    'ingest_overhead': (ingest_overhead, [], [
        '--studies', '2', '--series', '1', '--instances', '2', '--runs', '1',
        '--layouts', 'pinned']),
    'freshness': (freshness, [], ['--studies', '2', '--instances', '2',
                                  '--stable-age', '1', '--gap', '0']),
    'backfill': (backfill, [], ['--sizes', '2,4', '--instances', '1']),
    # The dataset: 200 studies x 3 series x 10 instances.
    'backfill_30': (backfill, ['--sizes', '200', '--series', '3', '--instances', '10',
                               '--name', 'backfill_30'],
                    ['--sizes', '2', '--series', '2', '--instances', '2',
                     '--name', 'backfill_30']),
    'memory': (memory, [], ['--total', '4', '--chunk', '2', '--instances', '1']),
    'rest_routes': (rest_routes, [], ['--studies', '2', '--requests', '20',
                                      '--clients', '2']),
    # GNU Health's own health_orthanc beside us; its venv is made on first use.
    'anchor': (anchor, [], ['--studies', '2', '--series', '1', '--instances', '2',
                            '--runs', '1']),
    'freshness_postgresql': (freshness, PG, ['--studies', '2', '--instances', '2',
                                             '--stable-age', '1', '--gap', '0', *PG]),
    'backfill_postgresql': (backfill, PG, ['--sizes', '2,4', '--instances', '1', *PG]),
    'backfill_30_postgresql': (backfill, ['--sizes', '200', '--series', '3', '--instances',
                                          '10', '--name', 'backfill_30', *PG], None),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--tiny', action='store_true')
    parser.add_argument('--only', default=','.join(MEASUREMENTS))
    args = parser.parse_args(argv)
    for name in args.only.split(','):
        module, full, tiny = MEASUREMENTS[name]
        if args.tiny and tiny is None:
            continue
        print(f'== {name}', flush=True)
        module.main(tiny if args.tiny else full)


if __name__ == '__main__':
    main()
