"""A study sent for a GNU Health imaging order lands on its patient and order.

Real Orthanc with the plugin, real trytond with GNU Health 5.0: the
administrator orders a chest CT for a patient through proteus, the modality
sends the study by C-STORE with the order's accession number and the
patient's PUID, and GNU Health links it to both and closes the order.
"""
from proteus import Model

import demo_data
import samples
from stack import wait_until


def test_study_links_to_patient_and_imaging_request(orthanc, gnuhealth, tmp_path):
    Patient = Model.get('gnuhealth.patient')
    Study = Model.get('gnuhealth.radiology.study')

    patient = demo_data.patient('Zoë', 'Müller', gender='f')
    party = patient.party
    request = demo_data.order(
        patient, demo_data.imaging_test('CT-CHEST', 'CT chest', 'CT'), confirm=False)
    assert request.request and request.state == 'draft'

    orthanc.store(samples.generate_study(
        tmp_path / 'ct', series=2, instances=3,
        AccessionNumber=request.request, PatientID=patient.puid,
        PatientName='Müller^Zoë', StudyDescription='CT chest'))

    def linked():
        studies = Study.find([])
        return (studies and studies[0].link_state == 'linked'
                and studies[0].reception == 'complete' and studies[0])
    study = wait_until(linked, 90, 'the study linked and complete in GNU Health')

    assert study.accession == request.request
    assert study.dicom_patient_id == patient.puid
    assert study.patient == patient
    assert study.party == party
    assert study.imaging_request == request
    request.reload()
    assert request.state == 'done'
    assert request.worklist_status in (None, 'done')
    result = study.imaging_result
    assert result and result.request == request and result.patient == patient
    assert [s.id for s in Patient(patient.id).radiology_studies] == [study.id]

    # The same study sent again stays one study on one result. The route
    # answers once GNU Health committed the push (the worker is idle: the
    # study is complete), so the records are checked right after.
    answer = orthanc.post(f'/gnuhealth/studies/{study.orthanc_id}/sync')
    assert answer == {'orthanc_id': study.orthanc_id, 'study_uid': study.study_uid,
                      'result': 'pushed'}
    assert [s.id for s in Study.find([])] == [study.id]
    assert len(Model.get('gnuhealth.imaging.test.result').find([])) == 1


def test_unknown_patient_id_does_not_block_the_others(orthanc, gnuhealth, tmp_path):
    Party = Model.get('party.party')
    Patient = Model.get('gnuhealth.patient')
    Study = Model.get('gnuhealth.radiology.study')
    party = Party(name='Bert', is_person=True, is_patient=True, gender='m')
    party.save()
    patient, = Patient.find([('party', '=', party.id)])

    orthanc.store(
        samples.generate_study(tmp_path / 'a', series=1, instances=2,
                               PatientID='UNKNOWN-ID-12345', AccessionNumber='X1')
        + samples.generate_study(tmp_path / 'b', series=1, instances=2,
                                 PatientID=patient.puid, AccessionNumber=None))

    def both():
        studies = Study.find([])
        return len(studies) == 2 and all(s.link_state != 'unmatched'
                                         or s.dicom_patient_id.startswith('UNKNOWN')
                                         for s in studies) and studies
    studies = wait_until(both, 90, 'both studies in GNU Health')
    by_id = {s.dicom_patient_id: s for s in studies}
    assert by_id['UNKNOWN-ID-12345'].link_state == 'unmatched'
    assert by_id['UNKNOWN-ID-12345'].accession == 'X1'
    assert by_id[patient.puid].link_state == 'linked'
    assert by_id[patient.puid].patient == patient
