"""Browser tests: Debian's chromium, headless, driven by Playwright, against
the real demo stack (trytond serving SAO, Orthanc with the plugin).

One stack for the whole session (the tests use different studies), built by
the same code as `make demo`: scripts/stack.py and scripts/demo_data.py.
Every test saves a screenshot into docs/screenshots/ (the README shows some).
"""
import base64
import json
import sys
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / 'scripts'))
import stack  # noqa: E402

CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
                 '--disable-component-update', '--no-first-run']
# SAO answers in well under a second here; leave room for a busy CI machine.
TIMEOUT_MS = 20000


class Demo:
    "The running demo stack and what demo_data created in it."

    def __init__(self, trytond, orthanc, patients):
        self.trytond, self.orthanc, self.patients = trytond, orthanc, patients

    def patient(self, lastname):
        return next(p for p in self.patients if p['lastname'] == lastname)

    def studies(self):
        "GNU Health's studies as the administrator reads them."
        return self.rpc('model.gnuhealth.radiology.study.search_read', [], 0, None, None,
                        ['id', 'orthanc_id', 'dicom_patient_id', 'link_state',
                         'reception', 'patient', 'description'])

    def rpc(self, method, *args):
        body = json.dumps({'method': method, 'params': [*args, {}], 'id': 1}).encode()
        request = urllib.request.Request(self.trytond.database_url, data=body,
                                         headers={'Content-Type': 'application/json'})
        token = base64.b64encode(':'.join(stack.ADMIN).encode()).decode()
        request.add_header('Authorization', 'Basic ' + token)
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
        if answer.get('error'):
            raise RuntimeError(answer['error'])
        return answer['result']


@pytest.fixture(scope='session')
def demo(tmp_path_factory):
    work = tmp_path_factory.mktemp('browser-stack')
    trytond = stack.Trytond(work / 'trytond', template=stack.template_database()).start()
    orthanc = None
    try:
        orthanc = stack.Orthanc(work / 'orthanc', trytond.url, stable_age=2).start()
        patients = stack.demo_records(trytond)
        stack.send_demo_studies(orthanc, patients, work / 'samples')
        demo = Demo(trytond, orthanc, patients)
        count = len(orthanc.get('/studies'))
        stack.wait_until(
            lambda: (len(s := demo.studies()) == count
                     and all(x['reception'] == 'complete' for x in s)),
            120, 'every demo study complete in GNU Health')
        yield demo
    except BaseException:
        for log in (work / 'orthanc' / 'orthanc.log', work / 'trytond' / 'trytond.log'):
            if log.exists():
                sys.stderr.write(f'\n----- {log} (last 60 lines)\n')
                sys.stderr.write(''.join(log.read_text(errors='replace')
                                         .splitlines(True)[-60:]))
        raise
    finally:
        if orthanc:
            orthanc.stop()
        trytond.stop()


@pytest.fixture(scope='session')
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, demo):
    """A fresh browser profile; Orthanc's login is given when it asks."""
    context = browser.new_context(
        viewport={'width': 1280, 'height': 800}, locale='en-US',
        http_credentials={'username': stack.ORTHANC_ADMIN[0],
                          'password': stack.ORTHANC_ADMIN[1]})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()

