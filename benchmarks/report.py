"""The tables of docs/benchmarks.md, from the JSON results of `make bench`.

    .venv/bin/python benchmarks/report.py [RESULTS_DIR]
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402


def load(directory):
    return {p.stem: json.loads(p.read_text()) for p in Path(directory).glob('*.json')}


def ingest(r):
    lines = ['| layout | plain inst/s (median of runs) | plugin inst/s | ratio '
             '| Orthanc CPU ms/instance, plain / plugin | load avg after |',
             '|---|---:|---:|---:|---|---|']
    for name, layout in r['layouts'].items():
        rates = layout['instances_per_s']
        cpu = layout.get('orthanc_cpu_ms_per_instance')
        cpu = f"{cpu['plain']['median']:.2f} / {cpu['plugin']['median']:.2f}" if cpu else ''
        lines.append(f"| {name} | {rates['plain']['median']:.0f} {rates['plain']['runs']} | "
                     f"{rates['plugin']['median']:.0f} {rates['plugin']['runs']} | "
                     f"{layout['ratio']:.2f} | {cpu} | {layout['load_average_after'][0]:.1f} |")
    return [f"{r['instances']} instances, one storescu association per run, ABBA order", '',
            *lines]


def freshness(r):
    return [f"{r['studies']} studies of {r['instances_per_study']} instances, StableAge "
            f"{r['stable_age']} s, GNU Health polled every {r['poll_interval']} s", '',
            '| | p50 s | p95 s | max s |', '|---|---:|---:|---:|',
            *(f"| {name} | {v['p50']} | {v['p95']} | {v['max']} |" for name, v in
              (('first visible', r['first_visible_s']),
               ('complete, after StableAge', r['complete_after_stable_s']),
               ("Orthanc's StableStudy, after StableAge",
                r.get('stable_study_after_stable_s')),
               ('complete, after the StableStudy', r.get('complete_after_stable_study_s')))
              if v is not None)]


def backfill(r):
    lines = [f"studies of {r['series']} series x {r['instances']} instances; per-study "
             f"wall-time ratio last/first step: {r['per_study_cost_ratio_last_to_first']}", '',
             '| studies | s | studies/s | ms/study | CPU s Orthanc / trytond (/ PostgreSQL) '
             '| CPU ms/study '
             '| resync, nothing new, s | Orthanc RSS MiB before / after / after 2nd | load |',
             '|---:|---:|---:|---:|---|---:|---:|---|---:|']
    for s in r['steps']:
        cpu = s.get('cpu_s', {})
        per = (sum(cpu.values()) / s['studies'] * 1000) if cpu else float('nan')
        rss = s['orthanc_rss_mib']
        lines.append(
            f"| {s['studies']} | {s['seconds']} | {s['studies_per_s']} | {s['ms_per_study']} | "
            f"{' / '.join(str(v) for v in cpu.values())} | {per:.2f} | "
            f"{s['resync_nothing_new_s']} | {rss['before']} / {rss['after']} / "
            f"{rss.get('after_second_resync', '')} | {s['load_average'][0]:.1f} |")
    return lines


def memory(r):
    rss = r['rss_mib_after_each_chunk']
    return [f"Orthanc RSS (MiB) at start, then after each {r['instances_per_chunk']} instances", '',
            '| side | RSS MiB |', '|---|---|',
            *(f'| {side} | {values} |' for side, values in rss.items()), '',
            f"Plugin's fixed cost at start: {r['plugin_fixed_cost_at_start_mib']} MiB.", '',
            '| import into /usr/bin/python3 | RSS MiB |', '|---|---:|',
            *(f'| {m} | {v} |' for m, v in r['import_rss_mib'].items()), '',
            'Slowest top-level imports (python -X importtime, cumulative ms): ' + ', '.join(
                f"{i['module']} {i['cumulative_ms']}" for i in r['slowest_imports'])]


def rest_routes(r):
    return [f"{r['requests']} requests per route from {r['clients']} clients, "
            f"{r['studies']} studies", '',
            '| route | p50 ms | p95 ms | max ms | req/s | RSS growth MiB per 10,000 | load |',
            '|---|---:|---:|---:|---:|---:|---:|',
            *(f"| /gnuhealth/studies/{{id}}/{name} | {v['p50_ms']} | {v['p95_ms']} | "
              f"{v['max_ms']} | {v['requests_per_s']} | {v['rss_growth_mib_per_10000']} | "
              f"{v['load_average'][0]:.1f} |" for name, v in r['routes'].items())]


RENDER = {'ingest_overhead': ingest, 'freshness': freshness, 'backfill': backfill,
          'backfill_30': backfill, 'memory': memory, 'rest_routes': rest_routes,
          # Measurement 7: the same scripts with --db postgresql.
          'freshness_postgresql': freshness, 'backfill_postgresql': backfill,
          'backfill_30_postgresql': backfill}


def main():
    results = load(sys.argv[1] if len(sys.argv) > 1 else harness.RESULTS)
    for name, render in RENDER.items():
        if name in results:
            r = results[name]
            print(f"### {name} ({r['at']}, load average {r['machine']['load_average'][0]:.1f})\n")
            print('\n'.join(render(r)) + '\n')


if __name__ == '__main__':
    main()
