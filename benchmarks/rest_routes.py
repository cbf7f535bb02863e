"""Measurement 6: the plugin's REST routes under concurrent clients.

With STUDIES studies in Orthanc and GNU Health, CLIENTS threads each send
GET requests (keep-alive off, as a browser's fetches of Orthanc Explorer)
round-robin over the studies, REQUESTS in all per route, for
/gnuhealth/studies/{id}/viewers (Orthanc only) and /state (Orthanc and a
search_read in GNU Health). Reports latency percentiles, requests/s and
Orthanc's RSS growth per 10,000 requests.

    .venv/bin/python benchmarks/rest_routes.py [--requests 10000 --clients 10]
"""
import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dataset  # noqa: E402
import harness  # noqa: E402
from harness import stack  # noqa: E402

ROUTES = ('viewers', 'state')


def hammer(orthanc, route, ids, requests, clients):
    "Latencies (s) of `requests` GETs of `route` from `clients` threads."
    latencies, lock = [], threading.Lock()
    counter = iter(range(requests))

    def client():
        mine = []
        for n in counter:
            started = time.perf_counter()
            orthanc.get(f'/gnuhealth/studies/{ids[n % len(ids)]}/{route}')
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--studies', type=int, default=50)
    parser.add_argument('--requests', type=int, default=10000)
    parser.add_argument('--clients', type=int, default=10)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        dataset.generate(tmp / 'archive', args.studies, 1, 2)
        trytond = stack.Trytond(tmp / 'trytond').start()
        orthanc = stack.Orthanc(tmp / 'orthanc', trytond.url,
                                gnuhealth={'Worklist': {'Enabled': False}})
        try:
            orthanc.start()
            harness.store_directory(tmp / 'archive', orthanc.dicom_port)
            harness.wait_synced(orthanc)
            ids = orthanc.get('/studies')
            result = {'studies': len(ids), 'clients': args.clients,
                      'requests': args.requests, 'routes': {}}
            for route in ROUTES:
                hammer(orthanc, route, ids, args.clients * 2, args.clients)  # warm up
                rss_before = harness.rss_mib(orthanc.process.pid)
                started = time.perf_counter()
                latencies = hammer(orthanc, route, ids, args.requests, args.clients)
                seconds = time.perf_counter() - started
                growth = harness.rss_mib(orthanc.process.pid) - rss_before
                result['routes'][route] = {
                    'p50_ms': round(harness.percentile(latencies, 0.5) * 1000, 2),
                    'p95_ms': round(harness.percentile(latencies, 0.95) * 1000, 2),
                    'max_ms': round(max(latencies) * 1000, 2),
                    'requests_per_s': round(args.requests / seconds, 1),
                    'rss_before_mib': round(rss_before, 1),
                    'rss_growth_mib_per_10000': round(growth * 10000 / args.requests, 2),
                    'load_average': harness.machine()['load_average']}
                print(route, result['routes'][route], flush=True)
            harness.write_result('rest_routes', result, orthanc)
        finally:
            orthanc.stop()
            trytond.stop()


if __name__ == '__main__':
    main()
