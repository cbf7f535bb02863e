"""What reading a study's character set (and, where Orthanc misreads it, its
text) adds to each study the plugin pushes, measured inside a real Orthanc.

Starts Orthanc 1.10.1 with the Python plugin running a small measuring
script (no GNU Health needed: the cost is all on Orthanc's side), stores
generated studies by C-STORE in several character sets, then for each study
times, through Orthanc's in-process REST API as the worker does:
  - fetch: the three reads the worker makes anyway (/studies/{id},
    /studies/{id}/series, /studies/{id}/instances);
  - first push: dicom_text.TextReader.study_text on an empty cache, the
    first time Orthanc reads the study's files ("cold") and in later rounds
    (Orthanc's cache of parsed files holds them: "warm");
  - pushed again: the same study, same reader (cached: no read).
All times are medians over the studies of a kind (ms); "fetch" is for
comparison, the plugin pays it for every push anyway.

    .venv/bin/python benchmarks/charset_cost.py [--studies 20] [--rounds 3]

Results and how to read them: docs/operations.md, "Character sets".
"""
import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'scripts'))
import samples  # noqa: E402
import stack  # noqa: E402

# name -> (series per study, tags of every file)
KINDS = {
    'ASCII, no charset, no accession': (1, dict(
        SpecificCharacterSet=None, AccessionNumber=None, PatientName='Doe^John')),
    'Latin-1 (ISO_IR 100), accession': (1, dict(
        SpecificCharacterSet='ISO_IR 100', AccessionNumber='A1', PatientName='Gérard^Hélène')),
    'UTF-8 (ISO_IR 192), accession': (1, dict(
        SpecificCharacterSet='ISO_IR 192', AccessionNumber='A1', PatientName='Müller^山田')),
    'UTF-8 (ISO_IR 192), accession, 4 series': (4, dict(
        SpecificCharacterSet='ISO_IR 192', AccessionNumber='A1', PatientName='Müller^山田')),
    'ISO 2022 IR 87, accession': (1, dict(
        SpecificCharacterSet=['', 'ISO 2022 IR 87'], AccessionNumber='A1',
        PatientName='Yamada^Tarou=山田^太郎', StudyDescription='胸部')),
    'ISO 2022 IR 87, accession, 4 series': (4, dict(
        SpecificCharacterSet=['', 'ISO 2022 IR 87'], AccessionNumber='A1',
        PatientName='Yamada^Tarou=山田^太郎', StudyDescription='胸部')),
}
INSTANCES_PER_SERIES = 5

# Runs inside Orthanc: GET /bench/charset?rounds=N times every study.
MEASURE = r'''
import json, site, statistics, sys, time
sys.path.insert(0, {repo!r})
site.addsitedir({site_packages!r})
import orthanc
from orthanc_gnuhealth_plugin import dicom_text
from orthanc_gnuhealth_plugin.orthanc_bridge import OrthancAdapter

adapter = OrthancAdapter(9721)


def ms(function):
    started = time.perf_counter()
    result = function()
    return (time.perf_counter() - started) * 1000, result


def fetch(study_id):
    study = adapter.get(f"/studies/{{study_id}}")
    adapter.get(f"/studies/{{study_id}}/series")
    return study, adapter.get(f"/studies/{{study_id}}/instances")


def bench(output, uri, **request):
    rounds = int(request["get"].get("rounds", "3"))
    rows = []
    for study_id in json.loads(orthanc.RestApiGet("/studies")):
        for n in range(rounds):
            fetch_ms, (study, instances) = ms(lambda: fetch(study_id))
            reads = []

            def read(path):
                reads.append(path)
                return adapter.get_raw(path)
            reader = dicom_text.TextReader(read, lambda level, line: orthanc.LogWarning(line))
            first_ms, _ = ms(lambda: reader.study_text(study, instances))
            again_ms, _ = ms(lambda: reader.study_text(study, instances))
            rows.append({{"study": study_id, "round": n, "fetch": fetch_ms,
                         "first": first_ms, "again": again_ms, "reads": len(reads),
                         "patient": study["PatientMainDicomTags"]["PatientID"]}})
    output.AnswerBuffer(json.dumps(rows), "application/json")


orthanc.RegisterRestCallback("/bench/charset", bench)
'''


def start_orthanc(workdir):
    site_packages = stack.VENV / 'lib' / f'python{sys.version_info.major}.{sys.version_info.minor}' \
        / 'site-packages'
    script = workdir / 'measure.py'
    script.write_text(MEASURE.format(repo=str(stack.REPO), site_packages=str(site_packages)))
    http, dicom = stack.free_port(), stack.free_port()
    conf = workdir / 'orthanc.json'
    conf.write_text(json.dumps({
        'StorageDirectory': str(workdir / 'storage'), 'IndexDirectory': str(workdir / 'storage'),
        'HttpPort': http, 'DicomPort': dicom, 'DicomAet': stack.ORTHANC_AET,
        'RemoteAccessAllowed': False, 'AuthenticationEnabled': False,
        'DefaultEncoding': 'Utf8', 'PythonScript': str(script), 'PythonVerbose': False,
        'Plugins': [str(stack.PLUGIN_DIR / 'libOrthancPython.so')]}))
    process = stack.Process('orthanc', ['Orthanc', conf], workdir / 'orthanc.log',
                            env=dict(os.environ, TCP_NODELAY='1')).start()
    server = stack.Orthanc(workdir, None, http_port=http, dicom_port=dicom)
    server.process = process
    stack.wait_until(lambda: server.get('/system'), 60, 'Orthanc', process.popen)
    return server


def percentile(values, fraction):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * fraction))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--studies', type=int, default=20, help='studies of each kind')
    parser.add_argument('--rounds', type=int, default=3, help='measures of each study')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix='charset-cost-') as directory:
        workdir = Path(directory)
        orthanc = start_orthanc(workdir)
        try:
            files = []
            for number, (series, tags) in enumerate(KINDS.values()):
                for n in range(args.studies):
                    files += samples.generate_study(
                        workdir / 'dicom' / f'{len(files)}', series=series,
                        instances=INSTANCES_PER_SERIES, PatientID=f'BENCH-{number}-{n}', **tags)
            for start in range(0, len(files), 200):
                stack.store(files[start:start + 200], orthanc.dicom_port)
            rows = orthanc.get(f'/bench/charset?rounds={args.rounds}')
        finally:
            orthanc.stop()
    report(rows)


def report(rows):
    """One line per kind of study; a row's kind is in its PatientID."""
    kinds = list(KINDS)
    by_kind = {}
    for row in rows:
        by_kind.setdefault(kinds[int(row['patient'].split('-')[1])], []).append(row)
    print('| studies | n | reads/study | fetch ms | + first push, cold: median ms | p95 ms '
          '| + first push, warm ms | + pushed again ms |')
    print('|---|---:|---:|---:|---:|---:|---:|---:|')
    for kind, group in by_kind.items():
        cold = [r['first'] for r in group if r['round'] == 0]
        warm = [r['first'] for r in group if r['round'] > 0] or cold
        median = lambda key: percentile([r[key] for r in group], 0.5)
        print(f"| {kind} | {len({r['study'] for r in group})} | "
              f"{max(r['reads'] for r in group)} | {median('fetch'):.2f} | "
              f"{percentile(cold, 0.5):.2f} | {percentile(cold, 0.95):.2f} | "
              f"{percentile(warm, 0.5):.2f} | {median('again'):.3f} |")


if __name__ == '__main__':
    main()
