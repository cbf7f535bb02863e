"""OHIF, served by Orthanc under /ohif/ (scripts/install.sh, ServeFolders):
a clinician's click in GNU Health or Orthanc Explorer opens the study in it.

OHIF is heavy (a 17 MB entry bundle, web workers, WebAssembly decoders): its
conditions get minutes, not seconds, on a busy 2-core machine.
"""
import base64
import os
import re
import urllib.error
import urllib.request

import pytest

import sao
import stack
from sao import screenshot
from test_browser import CLINICIAN_NAME, study_of

OHIF_TIMEOUT_MS = 180000
# The viewport's canvas shows an image: among pixels sampled across it, many
# different grey levels (a blank, black or single-colour canvas has one or two).
CANVAS_LEVELS = '''() => {
    const canvas = document.querySelector('.cornerstone-canvas');
    const context = canvas && canvas.width && canvas.getContext('2d');
    if (!context) return 0;
    const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
    const levels = new Set();
    for (let i = 0; i < data.length; i += 4 * 97) levels.add(data[i]);
    return levels.size;
}'''



@pytest.fixture(autouse=True)
def ohif_installed():
    """OHIF left out (scripts/install.sh with OHIF=0) skips these tests on a
    developer's machine, saying so; in CI (`CI` set, as .ci/run does) it is a
    failure, since a viewer test that never runs proves nothing."""
    if (stack.OHIF / 'index.html').exists():
        return
    why = f'OHIF is not installed in {stack.OHIF} (scripts/install.sh, OHIF=0)'
    if os.environ.get('CI'):
        pytest.fail(f'CI is set, so the OHIF tests must run: {why}', pytrace=False)
    pytest.skip(why)


def expect_study_in_ohif(viewer, demo, orthanc_id):
    """OHIF shows the study: its patient (from the DICOM tags, as Orthanc
    has them), one thumbnail per series in the study browser, and an image
    in the viewport."""
    study = demo.orthanc.get(f'/studies/{orthanc_id}')
    family, given = study['PatientMainDicomTags']['PatientName'].split('^')[:2]
    uid = study['MainDicomTags']['StudyInstanceUID']
    assert viewer.url == f'{demo.orthanc.url}/ohif/viewer?StudyInstanceUIDs={uid}'
    viewer.wait_for_function(
        'n => document.querySelectorAll(\'[data-cy="study-browser-thumbnail"]\').length === n',
        arg=len(study['Series']), timeout=OHIF_TIMEOUT_MS)
    viewer.wait_for_function(f'() => ({CANVAS_LEVELS})() > 20', timeout=OHIF_TIMEOUT_MS)
    # OHIF's header names the patient once its "Patient" summary is opened.
    viewer.get_by_text('Patient', exact=True).click()
    viewer.get_by_text(re.compile(rf'{re.escape(family)}.*{re.escape(given)}')).first.wait_for(
        timeout=OHIF_TIMEOUT_MS)
    # Its notice: confirmed, as a user does, so the screenshot shows the study.
    viewer.locator('[data-cy="confirm-and-hide-button"]').click()


def dicomweb_answers(page, demo):
    "Every answer of Orthanc's DICOMweb API to the page (OHIF's data source)."
    answers = []
    page.context.on('response', lambda r: answers.append(r.status) if (
        r.url.startswith(demo.orthanc.url + '/dicom-web/')) else None)
    return answers


def test_clinician_opens_study_in_ohif_from_gnuhealth(demo, page):
    ana = demo.patient('García')
    row = sao.patient_studies(
        page, demo, stack.CLINICIAN, CLINICIAN_NAME, ana).locator(
            'tr', has_text='CT chest, 2 series')
    row.wait_for()
    study = study_of(demo, ana['puid'])
    uid = demo.orthanc.get(f"/studies/{study['orthanc_id']}")['MainDicomTags'][
        'StudyInstanceUID']
    link = row.locator('a[href*="/ohif/viewer"]')
    assert link.get_attribute('href') == (
        f'{demo.orthanc.url}/ohif/viewer?StudyInstanceUIDs={uid}')
    # The first link of the row, before the other viewers'.
    assert '/ohif/viewer' in row.locator('a[href^="http"]').first.get_attribute('href')
    answers = dicomweb_answers(page, demo)
    with page.context.expect_page() as opened:
        link.click()
    viewer = opened.value
    expect_study_in_ohif(viewer, demo, study['orthanc_id'])
    # Logged in once (the browser's basic auth), OHIF's DICOMweb calls to
    # the same origin carry the same credentials.
    assert answers and set(answers) == {200}, answers
    screenshot(viewer, 'ohif-viewer')


def test_open_in_ohif_from_orthanc_explorer(demo, browser):
    """A browser given Orthanc's login once, as a person types it into the
    basic auth prompt (here: in the address), opens the study from Orthanc
    Explorer's "Open in OHIF"; OHIF's DICOMweb calls reuse that login."""
    orthanc_id = next(s['ID'] for s in demo.orthanc.get('/studies?expand')
                      if s['PatientMainDicomTags'].get('PatientID') == 'DEMO-0001')
    context = browser.new_context(viewport={'width': 1280, 'height': 800}, locale='en-US')
    try:
        page = context.new_page()
        answers = dicomweb_answers(page, demo)
        login = demo.orthanc.url.replace('http://', 'http://%s:%s@' % stack.ORTHANC_ADMIN)
        page.goto(f'{login}/app/explorer.html#study?uuid={orthanc_id}')
        button = page.locator('#gnuhealth-ohif')
        button.wait_for(timeout=OHIF_TIMEOUT_MS)
        with context.expect_page() as opened:
            button.click()
        expect_study_in_ohif(opened.value, demo, orthanc_id)
        assert answers and set(answers) == {200}, answers
    finally:
        context.close()


def test_ohif_needs_orthanc_login(demo):
    """OHIF's files and pages are behind Orthanc's HTTP basic auth, like
    the DICOMweb API they read."""
    index = (stack.OHIF / 'index.html').read_bytes()
    for path in ('/ohif/viewer?StudyInstanceUIDs=1.2.3', '/ohif/', '/ohif/index.html',
                 '/ohif/app-config.js'):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(demo.orthanc.url + path, timeout=30)
        assert refused.value.code == 401, path
    token = base64.b64encode(':'.join(stack.ORTHANC_ADMIN).encode()).decode()
    for path in ('/ohif/viewer?StudyInstanceUIDs=1.2.3', '/ohif/'):
        request = urllib.request.Request(demo.orthanc.url + path,
                                         headers={'Authorization': 'Basic ' + token})
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.read() == index, path
