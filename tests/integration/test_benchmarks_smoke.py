"""Each benchmark of the push path runs on a tiny dataset and writes a
result that says what it measured (the numbers themselves are not checked:
CI machines are noisy). `make bench` runs them at full size."""
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_benchmark_runs_on_a_tiny_dataset(tmp_path):
    env = dict(os.environ, BENCH_RESULTS=str(tmp_path))
    subprocess.run([sys.executable, str(REPO / 'benchmarks' / 'run_all.py'), '--tiny'],
                   check=True, env=env, timeout=600)
    results = {p.stem: json.loads(p.read_text()) for p in tmp_path.glob('*.json')}
    assert sorted(results) == ['anchor', 'backfill', 'backfill_30', 'backfill_postgresql',
                               'freshness', 'freshness_postgresql', 'ingest_overhead',
                               'memory', 'rest_routes']
    # Every study of the tiny archive reached GNU Health, at each step.
    steps = results['backfill']['steps']
    assert [s['complete_in_gnuhealth'] for s in steps] == [2, 4]
    # Every fourth study (0 and 4 of 0..3 here: one) has a GNU Health patient's PUID.
    assert [s['linked_to_a_patient'] for s in steps] == [1, 1]
    assert all(s['studies_per_s'] > 0 for s in steps)
    assert results['backfill_30']['steps'][0]['complete_in_gnuhealth'] == 2
    pinned = results['ingest_overhead']['layouts']['pinned']
    assert pinned['ratio'] > 0 and set(pinned['instances_per_s']) == {'plain', 'plugin'}
    for name in ('freshness', 'freshness_postgresql'):
        fresh = results[name]
        assert all(fresh[k]['max'] is not None for k in (
            'complete_after_stable_s', 'stable_study_after_stable_s',
            'complete_after_stable_study_s'))
    # --db postgresql: the same measurements, trytond on PostgreSQL, with
    # the cluster's own CPU beside trytond's.
    assert results['freshness_postgresql']['database'] == 'postgresql'
    pg = results['backfill_postgresql']
    assert pg['database'] == 'postgresql'
    assert [s['complete_in_gnuhealth'] for s in pg['steps']] == [2, 4]
    assert all(s['cpu_s']['postgresql'] > 0 for s in pg['steps'])
    assert results['backfill']['database'] == 'sqlite'
    assert pinned['orthanc_cpu_ms_per_instance']['plugin']['median'] > 0
    memory = results['memory']
    # RSS at start and after each of the two chunks, both sides.
    assert [len(v) for v in memory['rss_mib_after_each_chunk'].values()] == [3, 3]
    assert memory['slowest_imports'], 'python -X importtime output not parsed'
    routes = results['rest_routes']['routes']
    assert set(routes) == {'viewers', 'state'}
    assert all(r['p50_ms'] > 0 for r in routes.values())
    assert results['backfill']['machine']['orthanc'], 'versions recorded'
    # The anchor side by side: 2 studies x 1 series x 2 instances reached
    # both GNU Healths, by our resync and by each of health_orthanc's wizards.
    anchor = results['anchor']
    run, = anchor['runs']
    assert run['ours']['backfill']['studies_in_gnuhealth'] == 2
    for wizard in ('full_synchronize', 'get_new_studies'):
        steps = run['anchor'][wizard]
        assert steps['empty']['error'] is None, steps['empty']
        assert (steps['empty']['studies'], steps['empty']['instances']) == (2, 4)
        assert steps['nothing_new']['seconds'] > 0
    assert all(anchor['summary']['ratios'].values()), anchor['summary']
    assert anchor['anchor_versions']['gnuhealth-orthanc'].startswith('5.0.')
