"""Outside images uploaded in GNU Health land in Orthanc under the patient's
identity, and come back to the patient (issue 15).

Real trytond with GNU Health, real Orthanc with the plugin. The radiologist
uploads through proteus with their own login, as SAO does; the plugin
claims the upload, reconciles and stores the files, and the usual sync
links the studies. Expected values come from the DICOM files themselves.
"""
import datetime
import io
import xmlrpc.client
import zipfile

import pydicom
import pytest
from proteus import Model
from proteus import config as proteus_config

import demo_data
import samples
import stack
from stack import wait_until

UPLOADS = {'Interval': 1, 'MaxTotalMegabytes': 1}


def zip_of(paths):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w', zipfile.ZIP_DEFLATED) as archive:
        for path in paths:
            archive.write(path, f'CD/{path.parent.name}/{path.name}')
    return buffer.getvalue()


def outside_study(tmp_path, **tags):
    """pydicom's CT_small.dcm and a generated 2-series study of the same
    outside patient (CT_small's PatientID, unless `tags` say otherwise)."""
    return [samples.real_sample('CT_small.dcm')] + samples.generate_study(
        tmp_path / 'generated', series=2, instances=2, **tags)


def as_user(trytond, login):
    return proteus_config.set_xmlrpc_session(
        trytond.database_url, username=login[0], password=login[1])


def upload(data, filename, patient, request=None):
    Upload = Model.get('gnuhealth.radiology.upload')
    record = Upload(patient=patient, imaging_request=request, data=data, filename=filename)
    record.save()
    return record


def finished(record):
    def check():
        record.reload()
        return record.state in ('done', 'failed') and record
    return wait_until(check, 90, f'upload {record.filename} imported')


def instances(orthanc):
    return {i['MainDicomTags']['SOPInstanceUID']: i['ID']
            for i in orthanc.get('/instances?expand')}


@pytest.mark.gnuhealth(Uploads=UPLOADS)
def test_upload_reconciled_linked_and_idempotent(orthanc, gnuhealth, trytond, tmp_path):
    patient = demo_data.patient('Zoë', 'Müller', gender='f',
                                dob=datetime.date(1980, 2, 29))
    request = demo_data.order(
        patient, demo_data.imaging_test('CT-CHEST', 'CT chest', 'CT'))
    puid, request_id, patient_id = patient.puid, request.id, patient.id
    files = outside_study(tmp_path)
    originals = [pydicom.dcmread(p) for p in files]
    data = zip_of(files)

    with as_user(trytond, stack.RADIOLOGIST):
        Patient = Model.get('gnuhealth.patient')
        Request = Model.get('gnuhealth.imaging.test.request')
        Study = Model.get('gnuhealth.radiology.study')
        record = finished(upload(data, 'cd.zip', Patient(patient_id), Request(request_id)))
        assert (record.state, record.stored, record.skipped, record.failed) == (
            'done', len(files), 0, 0), record.message

        # In Orthanc: the patient's identity, every UID kept, the old ID kept.
        stored = instances(orthanc)
        assert set(stored) == {ds.SOPInstanceUID for ds in originals}
        assert {s['MainDicomTags']['StudyInstanceUID'] for s in orthanc.get(
            '/studies?expand')} == {ds.StudyInstanceUID for ds in originals}
        for ds in originals:
            tags = orthanc.get(f'/instances/{stored[ds.SOPInstanceUID]}/tags?simplify')
            assert tags['PatientID'] == puid
            assert tags['PatientName'] == 'Müller^Zoë'
            assert (tags['PatientBirthDate'], tags['PatientSex']) == ('19800229', 'F')
            assert tags['SeriesInstanceUID'] == ds.SeriesInstanceUID
            assert ds.PatientID in [o['PatientID'] for o in tags['OtherPatientIDsSequence']]
            assert tags['AccessionNumber'] == Request(request_id).request

        # In GNU Health: both studies on the patient and the order.
        def linked():
            studies = Study.find([('link_state', '=', 'linked')])
            return len(studies) == 2 and studies
        studies = wait_until(linked, 90, 'both studies linked in GNU Health')
        assert {s.patient.id for s in studies} == {patient_id}
        assert {s.imaging_request.id for s in studies} == {request_id}
        assert {s.id for s in Patient(patient_id).radiology_studies} == {
            s.id for s in studies}
        record.reload()
        assert {s.id for s in record.studies} == {s.id for s in studies}

        # The same CD again: nothing new in Orthanc nor in GNU Health.
        again = finished(upload(data, 'cd-again.zip', Patient(patient_id)))
        assert (again.state, again.stored, again.skipped, again.failed) == (
            'done', 0, len(files), 0)
        assert 'already in the PACS' in again.results
        assert len(orthanc.get('/instances')) == len(files)
        assert len(Study.find([])) == 2


@pytest.mark.gnuhealth(Uploads=UPLOADS)
def test_bad_uploads_refused_with_reasons(orthanc, gnuhealth, trytond, tmp_path):
    patient_id = demo_data.patient('Bert', 'Brown', gender='m').id
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, 'w', zipfile.ZIP_DEFLATED) as archive:
        archive.writestr('zeros.dcm', b'\0' * (20 << 20))
    ct_small = samples.real_sample('CT_small.dcm').read_bytes()
    junk = io.BytesIO()
    with zipfile.ZipFile(junk, 'w') as archive:
        archive.writestr('README.txt', 'Viewer for Windows')
        archive.writestr('IMG0001.dcm', ct_small[:20000])
    mixed = outside_study(tmp_path, PatientID='OTHER-HOSPITAL-42')

    with as_user(trytond, stack.RADIOLOGIST):
        patient = Model.get('gnuhealth.patient')(patient_id)
        records = [upload(bomb.getvalue(), 'bomb.zip', patient),
                   upload(junk.getvalue(), 'junk.zip', patient),
                   upload(zip_of(mixed), 'mixed.zip', patient)]
        bomb_upload, junk_upload, mixed_upload = [finished(r) for r in records]
        assert bomb_upload.state == 'failed'
        assert 'more than 1 MB' in bomb_upload.message
        assert junk_upload.state == 'failed'
        assert (junk_upload.stored, junk_upload.skipped, junk_upload.failed) == (0, 1, 1)
        assert 'README.txt: skipped (not a DICOM file)' in junk_upload.results
        assert 'IMG0001.dcm: failed (truncated' in junk_upload.results
        assert mixed_upload.state == 'failed'
        assert pydicom.dcmread(mixed[0]).PatientID in mixed_upload.message
        assert 'OTHER-HOSPITAL-42' in mixed_upload.message
    assert orthanc.get('/instances') == []

    with as_user(trytond, stack.CLINICIAN):
        with pytest.raises(xmlrpc.client.Fault, match='Radiology Upload'):
            upload(ct_small, 'CT_small.dcm', Model.get('gnuhealth.patient')(patient_id))
