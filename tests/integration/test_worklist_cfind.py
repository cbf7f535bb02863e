"""GNU Health's imaging orders reach the modality as a DICOM worklist.

Real Orthanc with the plugin, real trytond with GNU Health 5.0 and
health_imaging_worklist: orders are made through proteus, modalities ask
with dcmtk's findscu (a query from dcmtk's own wlistqry examples) and with
pynetdicom, and the test then plays the modality that performs an order.
"""
import datetime
import os
import subprocess
from pathlib import Path

import pytest
from proteus import Model
from pydicom import dcmread

import samples
import stack
from demo_data import imaging_test, order, patient
from modality import ask_worklist, worklist_query
from stack import wait_until

# dcmtk's example query that asks for every key a modality usually shows.
DCMTK_QUERY = Path('/usr/share/doc/dcmtk/examples/wlistqry/wlistqry11.dump')
FAST_WORKLIST = {'Worklist': {'RefreshInterval': 1, 'MaxStaleness': 3,
                              'AllowedCallingAETs': ['CT1']}}
TODAY = datetime.datetime.utcnow().replace(hour=9, minute=0, second=0, microsecond=0)


def local_date(utc):
    "The date a modality shows for a UTC time of Tryton's, as YYYYMMDD."
    return utc.replace(tzinfo=datetime.timezone.utc).astimezone().strftime('%Y%m%d')


@pytest.fixture
def orders(gnuhealth):
    """Three confirmed orders for two patients, and one draft that is not
    on the worklist yet."""
    ct = imaging_test('CT-CHEST', 'CT chest', 'CT')
    mr = imaging_test('MR-HEAD', 'MR head', 'MR')
    zoe = patient('Zoë', 'Müller', gender='f', dob=datetime.date(1980, 2, 29))
    bruno = patient('Bruno', 'Costa', gender='m')
    made = {
        'zoe-ct': order(zoe, ct, TODAY),
        'zoe-mr': order(zoe, mr, TODAY + datetime.timedelta(days=1)),
        'bruno-ct': order(bruno, ct, TODAY + datetime.timedelta(days=3)),
    }
    order(bruno, mr, TODAY, confirm=False)
    return made


def wait_for_worklist(orthanc, count):
    return wait_until(
        lambda: orthanc.get('/gnuhealth/status')['worklist']['orders'] == count, 30,
        f'{count} orders on the worklist')


def findscu(orthanc, tmp_path, *keys):
    "dcmtk's findscu with dcmtk's example query; returns the answers."
    query = tmp_path / 'query.dcm'
    subprocess.run(['dump2dcm', DCMTK_QUERY, query], check=True, capture_output=True)
    answers = tmp_path / 'answers'
    answers.mkdir(exist_ok=True)
    for old in answers.iterdir():
        old.unlink()
    arguments = [a for key in keys for a in ('-k', key)]
    subprocess.run(['findscu', '-W', '-aet', 'CT1', '-aec', stack.ORTHANC_AET,
                    '-X', '-od', answers, *arguments, '127.0.0.1',
                    str(orthanc.dicom_port), query],
                   check=True, capture_output=True, env=dict(os.environ, TCP_NODELAY='1'))
    return [dcmread(path) for path in sorted(answers.iterdir())]


def ask(orthanc, query):
    return ask_worklist(orthanc.dicom_port, query, called_aet=stack.ORTHANC_AET)


@pytest.mark.gnuhealth(**FAST_WORKLIST)
def test_findscu_gets_the_confirmed_orders(orthanc, orders, tmp_path):
    wait_for_worklist(orthanc, 3)

    answers = findscu(orthanc, tmp_path)

    by_accession = {a.AccessionNumber: a for a in answers}
    assert len(answers) == 3
    assert set(by_accession) == {o.request for o in orders.values()}
    zoe_ct = by_accession[orders['zoe-ct'].request]
    assert zoe_ct.SpecificCharacterSet == 'ISO_IR 192'
    assert str(zoe_ct.PatientName) == 'Müller^Zoë'
    assert zoe_ct.PatientID == orders['zoe-ct'].patient.puid
    assert (zoe_ct.PatientBirthDate, zoe_ct.PatientSex) == ('19800229', 'F')
    assert zoe_ct.StudyInstanceUID == orders['zoe-ct'].merge_id
    assert zoe_ct.RequestedProcedureID == orders['zoe-ct'].request_line
    assert zoe_ct.RequestedProcedureDescription == 'CT chest'
    step, = zoe_ct.ScheduledProcedureStepSequence
    assert step.Modality == 'CT'
    assert step.ScheduledProcedureStepStartDate == local_date(TODAY)
    assert by_accession[orders['zoe-mr'].request].ScheduledProcedureStepSequence[0] \
        .Modality == 'MR'

    # The modality's own filter, as a key on findscu's command line.
    answers = findscu(orthanc, tmp_path, '(0040,0100)[0].(0008,0060)=MR')
    assert [a.AccessionNumber for a in answers] == [orders['zoe-mr'].request]


@pytest.mark.gnuhealth(**FAST_WORKLIST)
def test_matching_keys_filter_and_gnuhealth_down_keeps_answering(
        orthanc, trytond, orders, tmp_path):
    wait_for_worklist(orthanc, 3)
    tomorrow = TODAY + datetime.timedelta(days=1)

    def accessions(**keys):
        return sorted(a.AccessionNumber for a in ask(orthanc, worklist_query(**keys)))

    expected = {name: o.request for name, o in orders.items()}
    assert accessions(Modality='CT', ScheduledProcedureStepStartDate=(
        f'{local_date(TODAY)}-{local_date(tomorrow)}')) == [expected['zoe-ct']]
    assert accessions(ScheduledProcedureStepStartDate=(
        f'{local_date(TODAY)}-{local_date(tomorrow)}')) == sorted(
            [expected['zoe-ct'], expected['zoe-mr']])
    assert accessions(PatientName='Müll*') == sorted([expected['zoe-ct'], expected['zoe-mr']])
    # Orthanc matches names without regard to case (CaseSensitivePN false).
    assert accessions(PatientName='MÜLLER^Z*') == sorted([expected['zoe-ct'], expected['zoe-mr']])
    assert accessions(PatientID=orders['bruno-ct'].patient.puid) == [expected['bruno-ct']]
    assert accessions(Modality='US') == []
    # Only the modalities of AllowedCallingAETs get the worklist.
    assert ask_worklist(orthanc.dicom_port, worklist_query(), calling_aet='LAPTOP',
                        called_aet=stack.ORTHANC_AET) == []

    # GNU Health stops: the modality still gets its worklist, from the cache.
    trytond.stop()
    wait_until(lambda: orthanc.get('/gnuhealth/status')['worklist']['last_error'], 30,
               'the worklist noticing that GNU Health is down')
    assert accessions(Modality='CT') == sorted([expected['zoe-ct'], expected['bruno-ct']])
    wait_until(lambda: orthanc.get('/gnuhealth/status')['worklist']['stale'], 30,
               'the worklist older than MaxStaleness')
    assert len(accessions()) == 3
    log = (orthanc.workdir / 'orthanc.log').read_text(errors='replace')
    assert 'GNU Health worklist: cannot load the imaging orders' in log
    assert 'GNU Health worklist: answering from orders loaded' in log

    # Back up: fresh again, with no step by hand.
    trytond.start()
    wait_until(lambda: not orthanc.get('/gnuhealth/status')['worklist']['stale'], 30,
               'the worklist loaded again')
    assert len(accessions()) == 3


@pytest.mark.gnuhealth(**FAST_WORKLIST)
def test_order_to_images_full_loop(orthanc, orders, tmp_path):
    Study = Model.get('gnuhealth.radiology.study')
    Request = Model.get('gnuhealth.imaging.test.request')
    wait_for_worklist(orthanc, 3)

    # The CT modality asks for today's CT work and takes the first item.
    item, = ask(orthanc, worklist_query(Modality='CT',
                                        ScheduledProcedureStepStartDate=local_date(TODAY)))
    # It scans the patient: its images carry what the worklist said.
    orthanc.store(samples.generate_study(
        tmp_path / 'ct', series=2, instances=3, study_uid=item.StudyInstanceUID,
        PatientID=item.PatientID, PatientName=item.PatientName,
        AccessionNumber=item.AccessionNumber, SpecificCharacterSet='ISO_IR 192',
        StudyDescription=item.RequestedProcedureDescription))

    def linked():
        studies = Study.find([('study_uid', '=', str(item.StudyInstanceUID))])
        return studies and studies[0].link_state == 'linked' and studies[0]
    study = wait_until(linked, 90, 'the study linked to its order')

    request = orders['zoe-ct']
    assert study.imaging_request == request
    assert study.patient == request.patient
    request = Request(request.id)
    assert (request.state, request.worklist_status) == ('done', 'done')
    # A performed order leaves the worklist.
    wait_for_worklist(orthanc, 2)
    assert [a.AccessionNumber for a in ask(orthanc, worklist_query(Modality='CT'))] == [
        orders['bruno-ct'].request]
