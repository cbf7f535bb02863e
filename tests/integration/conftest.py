"""Real servers for the integration tests.

Each test gets its own trytond (a copy of the cached GNU Health template
database) and its own Orthanc with the plugin, on free ports in its own
temporary folder; both are stopped by PID when the test ends. The logs are
printed when a test fails, since that is where the reason usually is.
"""
import os
import sys
from pathlib import Path

import pytest
from proteus import config as proteus_config

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'scripts'))
import stack  # noqa: E402
import cluster  # noqa: E402  (needs stack on the path)


# TRYTON_DB=postgresql (make test-postgresql): trytond runs GNU Health on a
# private PostgreSQL 15 cluster, one per session, instead of SQLite.
TRYTON_DB = os.environ.get('TRYTON_DB', 'sqlite')


@pytest.fixture(scope='session')
def tryton_postgresql():
    """The session's PostgreSQL cluster holding stack.PG_TEMPLATE (each test's
    trytond gets a copy), or None on SQLite."""
    if TRYTON_DB != 'postgresql':
        yield None
        return
    server = stack.PostgreSQL().start()
    try:
        stack.postgresql_template(server)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope='session')
def template_database(tryton_postgresql):
    return None if tryton_postgresql else stack.template_database()


@pytest.fixture
def trytond(tmp_path, template_database, tryton_postgresql):
    server = stack.Trytond(tmp_path / 'trytond', template=template_database,
                           postgresql=tryton_postgresql)
    yield server.start()
    server.stop()


@pytest.fixture
def postgresql():
    "A private PostgreSQL cluster for Orthanc's index; yields its port."
    yield from cluster.postgresql_cluster()


@pytest.fixture
def failure_logs(request):
    """Call it with servers (stack.Orthanc, stack.Trytond...): their logs are
    printed if the test fails. Printed at teardown, once pytest knows."""
    servers = []
    yield servers.extend
    report = getattr(request.node, 'rep_call', None)
    if report is None or not report.failed:
        return
    for server in servers:
        for log in sorted(server.workdir.glob('*.log')):
            sys.stderr.write(f'\n----- {log} (last 80 lines)\n')
            sys.stderr.write(''.join(log.read_text(errors='replace')
                                     .splitlines(True)[-80:]))


@pytest.fixture
def orthanc(tmp_path, trytond, request, failure_logs):
    """Orthanc with the plugin; a test marked `gnuhealth(Key=value, ...)`
    sets those keys of its "GnuHealth" section."""
    marker = request.node.get_closest_marker('gnuhealth')
    server = stack.Orthanc(tmp_path / 'orthanc', trytond.url,
                           gnuhealth=marker.kwargs if marker else None)
    failure_logs([server, trytond])
    yield server.start()
    server.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    setattr(item, 'rep_' + report.when, report)


@pytest.fixture
def gnuhealth(trytond):
    """proteus, logged in to GNU Health as its administrator, as a user's
    script would be; yields the proteus configuration."""
    login, password = stack.ADMIN
    with proteus_config.set_xmlrpc_session(
            trytond.database_url, username=login, password=password) as config:
        yield config
