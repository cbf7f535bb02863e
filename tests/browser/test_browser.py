"""What clinicians, radiology staff and radiologists see, in a real browser.

Debian's chromium, headless, driven by Playwright, against the real stack
(conftest.py). Each test leaves a screenshot in docs/screenshots/.
"""
import re
import xmlrpc.client
import zipfile

import pytest

import samples
import sao
import stack
from sao import screenshot

CLINICIAN_NAME = 'Dr. Clara Clinician'
RADIOLOGIST_NAME = 'Dr. Rafael Radiologist'


def study_of(demo, dicom_patient_id):
    study, = [s for s in demo.studies() if s['dicom_patient_id'] == dicom_patient_id]
    return study


def test_clinician_opens_linked_study_in_web_viewer(demo, page):
    ana = demo.patient('García')
    tab = sao.patient_studies(page, demo, stack.CLINICIAN, CLINICIAN_NAME, ana)
    row = tab.locator('tr', has_text='CT chest, 2 series')
    row.wait_for()
    link = row.locator('a[href*="/web-viewer/app/viewer.html?series="]')
    assert link.count() == 1
    study = study_of(demo, ana['puid'])
    assert row.locator('a[href*="/app/explorer.html"]').get_attribute('href') == (
        f"{demo.orthanc.url}/app/explorer.html#study?uuid={study['orthanc_id']}")
    # Only installed viewers are offered: this Orthanc has no Stone.
    assert tab.locator('a[href*="stone-webviewer"]').count() == 0
    screenshot(page, 'sao-patient-imaging-tab')

    images = []
    page.context.on('response', lambda r: images.append(r) if (
        r.url.startswith(demo.orthanc.url + '/web-viewer/instances/')) else None)
    with page.context.expect_page() as opened:
        link.click()
    viewer = opened.value
    viewer.wait_for_load_state('load')
    assert viewer.url.startswith(demo.orthanc.url + '/web-viewer/app/viewer.html?series=')
    viewer.wait_for_function('() => document.querySelectorAll("canvas").length > 0')
    stack.wait_until(lambda: any(r.status == 200 for r in images), 30,
                     'the web viewer loading images from Orthanc')
    # The first image painted: some pixel of a canvas is not black.
    viewer.wait_for_function('''() => [...document.querySelectorAll('canvas')].some(c => {
        const context = c.width && c.height && c.getContext('2d');
        if (!context) return false;
        const data = context.getImageData(0, 0, c.width, c.height).data;
        for (let i = 0; i < data.length; i += 4)
            if (data[i] || data[i + 1] || data[i + 2]) return true;
        return false;
    })''')
    screenshot(viewer, 'orthanc-web-viewer')


def test_radiologist_links_unmatched_study(demo, page):
    chloe = demo.patient('Martin')
    sao.login(page, demo, stack.RADIOLOGIST, RADIOLOGIST_NAME)
    sao.menu(page, 'Radiology', 'Unmatched Studies')
    tab = sao.current_tab(page)
    tab.get_by_text('CT chest, walk-in (no order)').click()
    sao.launch_action(page, 'Link Studies')
    wizard = sao.dialog(page)
    sao.choose(page, 'patient', 'Martin', 'Martin, Chloé')
    screenshot(page, 'sao-link-wizard')
    wizard.get_by_role('button', name=re.compile('link', re.I)).click()
    wizard.wait_for(state='detached')

    study = study_of(demo, stack.UNMATCHED_PATIENT_ID)
    assert study['link_state'] == 'linked'
    assert study['patient'] == chloe['patient_id']

    page.goto(f"{demo.trytond.url}#{stack.DATABASE}/model/gnuhealth.patient/"
              f"{chloe['patient_id']}")
    page.reload()
    sao.notebook_page(page, 'Imaging Studies')
    sao.current_tab(page).locator(
        'tr', has_text='CT chest, walk-in (no order)').wait_for()
    screenshot(page, 'sao-patient-after-link')


def test_orthanc_explorer_shows_gnuhealth_state(demo, page):
    ana = demo.patient('García')
    study = study_of(demo, ana['puid'])
    page.goto(f"{demo.orthanc.url}/app/explorer.html#study?uuid={study['orthanc_id']}")
    box = page.locator('#gnuhealth-study')
    page.wait_for_selector('#gnuhealth-study[data-gnuhealth-state="synced"]')
    assert 'García' in box.locator('#gnuhealth-patient').inner_text()
    # The order as radiology staff name it (code, test, state), not GNU
    # Health's rec_name of it, "(Administrator) //".
    order = box.locator('#gnuhealth-request').inner_text()
    assert order.startswith(f"Imaging order: {ana['request']}: CT chest ("), order
    assert '//' not in order
    open_link = box.locator('#gnuhealth-open')
    assert open_link.get_attribute('href') == (
        f"{demo.trytond.url}#{stack.DATABASE}/model/gnuhealth.radiology.study/{study['id']}")
    screenshot(page, 'orthanc-explorer-study')

    box.locator('#gnuhealth-send').click()
    box.locator('#gnuhealth-message', has_text='Sent to GNU Health.').wait_for()
    assert box.get_attribute('data-gnuhealth-state') == 'synced'

    # Orthanc Explorer's home page says what the plugin is doing.
    page.goto(f"{demo.orthanc.url}/app/explorer.html")
    page.locator('#gnuhealth-status-text', has_text='sent to GNU Health').wait_for()


def test_clinician_has_no_admin_menus_nor_pacs_writes(demo, page):
    bruno = demo.patient('Costa')
    study = study_of(demo, bruno['puid'])
    sao.login(page, demo, stack.CLINICIAN, CLINICIAN_NAME,
              f"model/gnuhealth.radiology.study/{study['id']}")
    menu = page.locator('#menu')
    menu.get_by_text('Health', exact=True).wait_for()
    assert menu.get_by_text('Administration', exact=True).count() == 0
    assert menu.get_by_text('Radiology', exact=True).count() == 0
    form = sao.current_tab(page)
    # PACS fields, and the links only radiology staff may change: each one
    # is on the form as an input, and every input of a study field is
    # read-only (a clinician may not write studies). Other inputs, such as
    # the series list's row selectors, are no fields.
    fields = demo.rpc('model.gnuhealth.radiology.study.fields_get', None).keys()
    form.locator('input[name="imaging_request"]').wait_for(state='attached')
    inputs = dict(form.locator('input[name], textarea[name], select[name]').evaluate_all(
        'controls => controls.map(c => [c.name, c.readOnly || c.disabled])'))
    inputs = {name: read_only for name, read_only in inputs.items() if name in fields}
    assert {'description', 'dicom_patient_id', 'accession', 'study_uid',
            'party', 'patient', 'imaging_request'} <= inputs.keys(), inputs
    assert [name for name, read_only in inputs.items() if not read_only] == []
    assert form.locator('button#delete_').count() == 0 or \
        form.locator('button#delete_').is_disabled()
    # Each series links to Orthanc's preview of its first image.
    preview = form.locator('a[href*="/instances/"][href$="/preview"]').first
    preview.wait_for(state='attached')
    answer = page.request.get(preview.get_attribute('href'))
    assert answer.ok and answer.headers['content-type'] == 'image/png'
    screenshot(page, 'sao-study-form-clinician')

    # And the server refuses what the form does not offer: trytond's
    # AccessError (a UserError, fault code 1) on the study model.
    refused = (1, 'You are not allowed to access "Radiology Study". - ')
    with xmlrpc.client.ServerProxy(
            demo.trytond.database_url.replace('http://', 'http://%s:%s@' % stack.CLINICIAN),
            allow_none=True) as server:
        with pytest.raises(xmlrpc.client.Fault) as write:
            server.model.gnuhealth.radiology.study.write(
                [study['id']], {'description': 'changed'}, {})
        with pytest.raises(xmlrpc.client.Fault) as delete:
            server.model.gnuhealth.radiology.study.delete([study['id']], {})
    assert (write.value.faultCode, write.value.faultString) == refused
    assert (delete.value.faultCode, delete.value.faultString) == refused
    assert study_of(demo, bruno['puid'])['description'] == study['description']


def test_radiologist_uploads_outside_cd(demo, page, tmp_path):
    """A CD from another hospital, uploaded on the patient in SAO: the study
    lands on the patient's Imaging Studies tab under her identity."""
    chloe = demo.patient('Martin')
    files = samples.generate_study(tmp_path / 'cd', series=1, instances=2,
                                   PatientID='OUTSIDE-77', PatientName='Martin^C',
                                   StudyDescription='Outside CD, chest CT')
    archive = tmp_path / 'outside-cd.zip'
    with zipfile.ZipFile(archive, 'w') as zipped:
        for path in files:
            zipped.write(path, f'DICOM/{path.name}')

    sao.login(page, demo, stack.RADIOLOGIST, RADIOLOGIST_NAME,
              f"model/gnuhealth.patient/{chloe['patient_id']}")
    sao.launch_action(page, 'Upload Images')
    # The action opens the patient's uploads in a tab of their own.
    sao.current_tab(page).get_by_text('Upload Images').first.wait_for()
    tab = sao.current_tab(page)
    tab.locator('button#new_').click()
    # The new upload is shown with the patient filled in by the action.
    page.wait_for_function(
        '''name => [...document.querySelectorAll(
            '#tabcontent .tab-pane.active input[name="patient"]')].some(e => e.value === name)''',
        arg='Martin, Chloé')
    tab.locator('input[type=file]').set_input_files(str(archive))
    # SAO reads the file, then shows its name beside the field.
    page.wait_for_function(
        '''name => [...document.querySelectorAll('#tabcontent .tab-pane.active input')]
            .some(e => e.value === name)''', arg=archive.name)
    screenshot(page, 'sao-upload-new')
    tab.locator('button#save').click()

    def upload():
        rows = demo.rpc('model.gnuhealth.radiology.upload.search_read',
                        [('filename', '=', archive.name)], 0, None, None,
                        ['state', 'patient', 'stored', 'skipped', 'failed'])
        return rows and rows[0]['state'] in ('done', 'failed') and rows[0]
    done = stack.wait_until(upload, 90, 'the upload imported by Orthanc')
    assert (done['state'], done['patient'], done['stored']) == (
        'done', chloe['patient_id'], len(files))

    def linked():
        return [s for s in demo.studies() if s['description'] == 'Outside CD, chest CT'
                and s['link_state'] == 'linked']
    study, = stack.wait_until(linked, 90, 'the uploaded study linked in GNU Health')
    assert (study['patient'], study['dicom_patient_id']) == (
        chloe['patient_id'], chloe['puid'])

    # What the radiologist sees: the upload done, with its counts and study.
    tab.locator('button#reload').click()
    tab.locator('tr', has_text='Outside CD, chest CT').wait_for()
    screenshot(page, 'sao-upload-done')

    page.goto(f"{demo.trytond.url}#{stack.DATABASE}/model/gnuhealth.patient/"
              f"{chloe['patient_id']}")
    page.reload()
    sao.notebook_page(page, 'Imaging Studies')
    sao.current_tab(page).locator('tr', has_text='Outside CD, chest CT').wait_for()
