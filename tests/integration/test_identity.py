"""Never the wrong patient: the three findings of issue 9, with real servers.

Orthanc identifies a study by PatientID and StudyInstanceUID, so the same
UID under two PatientIDs is two Orthanc studies. GNU Health must hold one
record per Orthanc study, with all its series and images, flag both as a
conflict, link neither automatically, and report nothing as failed. An
accession equal to a local order code does not win over an outside
PatientID. See docs/linking.md.
"""
from proteus import Model

import demo_data
import samples
from stack import wait_until

COLLISION = "The same study UID arrived for patients"


def orthanc_content(orthanc):
    "Return {Orthanc study ID: (PatientID, series count, instance count)}"
    content = {}
    for study_id in orthanc.get('/studies'):
        study = orthanc.get(f'/studies/{study_id}')
        content[study_id] = (
            study['PatientMainDicomTags'].get('PatientID'),
            len(study['Series']),
            len(orthanc.get(f'/studies/{study_id}/instances')))
    return content


def synced(orthanc, count):
    """Wait until GNU Health holds every Orthanc study, complete, with all
    its series and images, and the plugin has nothing left to push;
    return the records by Orthanc ID."""
    Study = Model.get('gnuhealth.radiology.study')

    def check():
        content = orthanc_content(orthanc)
        records = {s.orthanc_id: s for s in Study.find([])}
        status = orthanc.get('/gnuhealth/status')
        return (len(content) == count and status['pending'] == 0
                and set(records) == set(content)
                and all(records[o].reception == 'complete'
                        and len(records[o].series) == series
                        and records[o].instance_count == instances
                        for o, (_, series, instances) in content.items())
                and records)
    records = wait_until(check, 90, f'{count} Orthanc studies in GNU Health')
    assert orthanc.get('/gnuhealth/status')['failed'] == []
    return records


def by_patient_id(records):
    return {s.dicom_patient_id: s for s in records.values()}


def test_same_uid_resent_for_another_patient(orthanc, gnuhealth, tmp_path):
    "Finding 1: A's study is linked, then the same UID arrives with B's PUID"
    Patient = Model.get('gnuhealth.patient')
    anna = demo_data.patient('Anna', 'Alpha', gender='f')
    bert = demo_data.patient('Bert', 'Beta', gender='m')
    study_uid = '1.2.826.0.1.3680043.8.498.91001'

    orthanc.store(samples.generate_study(
        tmp_path / 'a', series=1, instances=1, study_uid=study_uid,
        PatientID=anna.puid, AccessionNumber=None))
    first, = synced(orthanc, 1).values()
    assert (first.link_state, first.patient) == ('linked', anna)

    orthanc.store(samples.generate_study(
        tmp_path / 'b', series=1, instances=1, study_uid=study_uid,
        PatientID=bert.puid, AccessionNumber=None))
    records = by_patient_id(synced(orthanc, 2))

    wrong, right = records[anna.puid], records[bert.puid]
    assert wrong.id == first.id
    # A's record keeps its link until a person decides, but is a conflict.
    assert (wrong.link_state, wrong.patient) == ('conflict', anna)
    assert (right.link_state, right.patient) == ('conflict', None)
    for study in (wrong, right):
        assert f'{COLLISION} {anna.puid} and {bert.puid}' in study.link_note \
            or f'{COLLISION} {bert.puid} and {anna.puid}' in study.link_note
    # Neither clinician sees a study in conflict.
    assert Patient(anna.id).radiology_studies == []
    assert Patient(bert.id).radiology_studies == []


def test_same_uid_for_two_patients_in_one_run(orthanc, gnuhealth, tmp_path):
    "Finding 2: one series of A and one of B, same UID, one storescu run"
    anna = demo_data.patient('Anna', 'Alpha', gender='f')
    bert = demo_data.patient('Bert', 'Beta', gender='m')
    study_uid = '1.2.826.0.1.3680043.8.498.91002'

    orthanc.store(
        samples.generate_study(tmp_path / 'a', series=1, instances=2,
                               study_uid=study_uid, PatientID=anna.puid,
                               AccessionNumber=None)
        + samples.generate_study(tmp_path / 'b', series=1, instances=3,
                                 study_uid=study_uid, PatientID=bert.puid,
                                 AccessionNumber=None))
    records = by_patient_id(synced(orthanc, 2))

    assert set(records) == {anna.puid, bert.puid}
    for study in records.values():
        assert study.link_state == 'conflict'
        assert COLLISION in study.link_note
    assert records[bert.puid].patient is None
    # The plugin may push A's study, and link it, before B's arrives: it
    # then keeps that link until a person decides, as in finding 1.
    assert records[anna.puid].patient in (None, anna)
    for patient in (anna, bert):
        assert Model.get('gnuhealth.patient')(patient.id).radiology_studies == []
    assert records[anna.puid].instance_count == 2
    assert records[bert.puid].instance_count == 3


def test_foreign_patient_id_with_a_local_order_code(orthanc, gnuhealth, tmp_path):
    "Finding 3: an outside PatientID and an accession equal to an order code"
    zoe = demo_data.patient('Zoë', 'Müller', gender='f')
    request = demo_data.order(
        zoe, demo_data.imaging_test('CT-CHEST', 'CT chest', 'CT'), confirm=False)

    orthanc.store(samples.generate_study(
        tmp_path / 'ext', series=1, instances=2,
        PatientID='EXT-4711', AccessionNumber=request.request))
    study, = synced(orthanc, 1).values()

    assert (study.link_state, study.patient, study.imaging_request) == (
        'conflict', None, None)
    assert request.request in study.link_note
    assert 'EXT-4711' in study.link_note and zoe.puid in study.link_note
    request.reload()
    assert request.state == 'draft'
