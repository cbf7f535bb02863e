"""Measurement 5: Orthanc's memory, with and without the plugin.

  - growth: Orthanc's RSS after each CHUNK of TOTAL ingested instances
    (one storescu association per chunk), with the plugin syncing into
    trytond, and for the same configuration without the Python plugin;
  - fixed cost: RSS of both once started, before any instance;
  - what makes it up: the RSS a bare /usr/bin/python3 (Orthanc's embedded
    Python, with the venv on its path as the launcher puts it) gains by
    importing each of the plugin's third-party dependencies, then the whole
    plugin, and `python -X importtime`'s slowest top-level imports.

    .venv/bin/python benchmarks/memory.py [--total 20000 --chunk 5000]
"""
import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dataset  # noqa: E402
import harness  # noqa: E402
from harness import stack  # noqa: E402

# What the plugin imports beyond the standard library (numpy: pydicom loads
# it when it is installed), then all of it
# (orthanc_bridge aside: it needs Orthanc's own `orthanc` module).
IMPORTS = ['numpy', 'pydicom', 'proteus', 'orthanc_gnuhealth_plugin.sync, '
           'orthanc_gnuhealth_plugin.gnuhealth_client, orthanc_gnuhealth_plugin.worklist, '
           'orthanc_gnuhealth_plugin.explorer']
PRELUDE = ('import site, sys, resource; sys.path.insert(0, {repo!r}); site.addsitedir({site!r})\n'
           'def rss():\n'
           '    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20\n')


def site_packages():
    version = f'python{sys.version_info.major}.{sys.version_info.minor}'
    return str(stack.VENV / 'lib' / version / 'site-packages')


def import_cost(module):
    "RSS (MiB) /usr/bin/python3 gains by importing `module`."
    code = (PRELUDE.format(repo=str(harness.REPO), site=site_packages())
            + f'before = rss()\nimport {module}\nprint(rss() - before)\n')
    out = subprocess.run(['/usr/bin/python3', '-c', code], check=True,
                         capture_output=True, text=True).stdout
    return round(float(out), 1)


def slowest_imports(count=8):
    "The top-level imports of the whole plugin by cumulative import time (ms)."
    code = PRELUDE.format(repo=str(harness.REPO), site=site_packages()) + f'import {IMPORTS[-1]}\n'
    err = subprocess.run(['/usr/bin/python3', '-X', 'importtime', '-c', code], check=True,
                         capture_output=True, text=True).stderr
    rows = []
    for line in err.splitlines():
        match = re.match(r'import time:\s+\d+ \|\s+(\d+) \| ( *)(\S+)', line)
        if match and not match.group(2):  # top level only
            rows.append((int(match.group(1)) / 1000, match.group(3)))
    return [{'module': m, 'cumulative_ms': round(t, 1)}
            for t, m in sorted(rows, reverse=True)[:count]]


def growth(workdir, chunks, with_plugin):
    trytond = None
    try:
        if with_plugin:
            trytond = stack.Trytond(workdir / 'trytond').start()
            orthanc = stack.Orthanc(workdir / 'orthanc', trytond.url)
        else:
            orthanc = harness.PlainOrthanc(workdir / 'orthanc', 'http://127.0.0.1:9/')
        orthanc.start()
        if with_plugin:
            harness.wait_synced(orthanc)  # the worker started and logged in
        rss = [round(harness.rss_mib(orthanc.process.pid), 1)]
        for chunk in chunks:
            harness.store_directory(chunk, orthanc.dicom_port)
            if with_plugin:
                harness.wait_synced(orthanc)
            rss.append(round(harness.rss_mib(orthanc.process.pid), 1))
        return rss
    finally:
        orthanc.stop()
        if trytond:
            trytond.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--total', type=int, default=20000)
    parser.add_argument('--chunk', type=int, default=5000)
    parser.add_argument('--instances', type=int, default=50, help='per study')
    args = parser.parse_args(argv)
    per_chunk = args.chunk // args.instances
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        chunks = []
        for n in range(args.total // args.chunk):
            dataset.generate(tmp / f'chunk-{n}', per_chunk, 1, args.instances,
                             start=n * per_chunk)
            chunks.append(tmp / f'chunk-{n}')
        result = {'instances_per_chunk': per_chunk * args.instances,
                  'rss_mib_after_each_chunk': {
                      'plain': growth(tmp / 'plain', chunks, False),
                      'plugin': growth(tmp / 'plugin', chunks, True)}}
        rss = result['rss_mib_after_each_chunk']
        result['plugin_fixed_cost_at_start_mib'] = round(rss['plugin'][0] - rss['plain'][0], 1)
        result['import_rss_mib'] = {m: import_cost(m) for m in IMPORTS}
        result['slowest_imports'] = slowest_imports()
        harness.write_result('memory', result)


if __name__ == '__main__':
    main()
