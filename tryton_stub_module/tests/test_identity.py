# This file is part of orthanc-gnuhealth.  The COPYRIGHT file at the top level
# of this repository contains the full copyright notices and license terms.
"""One record per Orthanc study, and never the wrong patient (issue 9)

The rules of docs/linking.md, on plain Tryton and with GNU Health.
"""
import copy
import datetime

import pydicom
from pydicom.data import get_testdata_file
from sql import Null

from trytond.exceptions import UserError
from trytond.model.exceptions import AccessError
from trytond.pool import Pool
# The database of a module test without the generic checks of
# ModuleTestCase, which test_module.py runs already.
from trytond.tests.test_tryton import _DBTestCase as DBTestCase
from trytond.tests.test_tryton import with_transaction
from trytond.transaction import Transaction

from . import test_module as base

# The study ID that Orthanc 1.10.1 gave pydicom's CT_small.dcm when it was
# sent to it (POST /instances, then GET /studies).
CT_SMALL_ORTHANC_ID = '8a8cf898-ca27c490-d0c7058c-929d0581-2bbf104d'


def collision_batch(*patient_ids):
    "Return a batch of one study UID under each PatientID, as Orthanc has it"
    batch = base.make_batch()
    template = batch['studies'][0]
    batch['studies'] = []
    for n, patient_id in enumerate(patient_ids, 1):
        study = copy.deepcopy(template)
        study.update(orthanc_id='study-%s' % patient_id,
            dicom_patient_id=patient_id, accession=None)
        # Each Orthanc study holds the series of its own PatientID.
        study['series'] = [dict(template['series'][0],
                series_uid='1.2.3.4.%d' % n, orthanc_id='series-%d' % n,
                instances=[dict(i, orthanc_id='%s-%d' % (i['orthanc_id'], n))
                    for i in template['series'][0]['instances']])]
        batch['studies'].append(study)
    return batch


class IdentityTestCase(DBTestCase):
    "Identity and conflicts of health_radiology on plain Tryton"
    module = 'health_radiology'

    push_study = base.HealthRadiologyTestCase.push_study

    def studies(self):
        Study = Pool().get('gnuhealth.radiology.study')
        return {s.orthanc_id: s for s in Study.search([])}

    @with_transaction()
    def test_orthanc_study_id(self):
        "The upgrade computes a study's ID as Orthanc does"
        from ..study import orthanc_study_id
        dataset = pydicom.dcmread(get_testdata_file('CT_small.dcm'))

        self.assertEqual(
            orthanc_study_id(dataset.PatientID, dataset.StudyInstanceUID),
            CT_SMALL_ORTHANC_ID)

    @with_transaction()
    def test_upgrade(self):
        "A database of the former schema upgrades and keeps its links"
        pool = Pool()
        Party = pool.get('party.party')
        Study = pool.get('gnuhealth.radiology.study')
        dataset = pydicom.dcmread(get_testdata_file('CT_small.dcm'))
        party, = Party.create([{'name': "Zoë", 'code': dataset.PatientID}])
        study = self.push_study(dataset.StudyInstanceUID,
            dicom_patient_id=dataset.PatientID)
        self.assertEqual((study.party, study.link_state), (party, 'linked'))
        # Before 7.0.1 the Orthanc ID was optional.
        table = Study.__table__()
        cursor = Transaction().connection.cursor()
        cursor.execute(*table.update([table.orthanc_id], [Null]))

        Study.__register__('health_radiology')

        cursor.execute(*table.select(table.orthanc_id))
        self.assertEqual(cursor.fetchall(), [(CT_SMALL_ORTHANC_ID,)])
        Transaction().cache.clear()
        study = Study(study.id)
        self.assertEqual(study.orthanc_id, CT_SMALL_ORTHANC_ID)
        self.assertEqual((study.party, study.link_state), (party, 'linked'))
        # The next push of the same Orthanc study updates that record.
        batch = base.make_batch()
        batch['studies'][0].update(orthanc_id=CT_SMALL_ORTHANC_ID,
            study_uid=dataset.StudyInstanceUID,
            dicom_patient_id=dataset.PatientID)
        result = Study.push_from_pacs(batch)
        self.assertEqual(result['studies'], {CT_SMALL_ORTHANC_ID: study.id})

    @with_transaction()
    def test_uid_collision(self):
        "A UID resent for another patient: two records, both in conflict"
        pool = Pool()
        Party = pool.get('party.party')
        Study = pool.get('gnuhealth.radiology.study')
        anna, = Party.create([{'name': "Anna", 'code': 'PA'}])
        Party.create([{'name': "Bert", 'code': 'PB'}])
        batch = collision_batch('PA', 'PB')
        first = dict(batch, studies=batch['studies'][:1])
        second = dict(batch, studies=batch['studies'][1:])

        result = Study.push_from_pacs(first)
        self.assertEqual(result['conflicts'], {})
        self.assertEqual(self.studies()['study-PA'].party, anna)
        result = Study.push_from_pacs(second)

        studies = self.studies()
        a, b = studies['study-PA'], studies['study-PB']
        note = "The same study UID arrived for patients PA and PB"
        self.assertEqual(len(studies), 2)
        self.assertEqual((a.link_state, a.party), ('conflict', anna))
        self.assertEqual((b.link_state, b.party), ('conflict', None))
        for study in [a, b]:
            self.assertIn(note, study.link_note)
        # The answer names both, though the batch held only B's study.
        self.assertEqual(result['studies'], {'study-PB': b.id})
        self.assertEqual(result['conflicts'], {
                'study-PA': a.link_note, 'study-PB': b.link_note})
        # Each record keeps the series of its own Orthanc study.
        self.assertEqual(
            [(s.series_uid, s.instance_count) for s in a.series],
            [('1.2.3.4.1', 3)])
        self.assertEqual(
            [(s.series_uid, s.instance_count) for s in b.series],
            [('1.2.3.4.2', 3)])

        # Pushing A again, or matching again, keeps both in conflict.
        Study.push_from_pacs(first)
        Study.match_pending(('id', '>', 0))
        self.assertEqual(
            {s.link_state for s in self.studies().values()}, {'conflict'})

    @with_transaction()
    def test_uid_collision_one_batch(self):
        "Both PatientIDs of a UID in one batch: neither is linked"
        pool = Pool()
        Party = pool.get('party.party')
        Study = pool.get('gnuhealth.radiology.study')
        Party.create([{'name': "Anna", 'code': 'PA'}])
        Party.create([{'name': "Bert", 'code': 'PB'}])

        result = Study.push_from_pacs(collision_batch('PA', 'PB'))

        studies = self.studies()
        self.assertEqual(
            {o: (s.link_state, s.party) for o, s in studies.items()}, {
                'study-PA': ('conflict', None),
                'study-PB': ('conflict', None),
                })
        self.assertEqual(set(result['conflicts']), {'study-PA', 'study-PB'})

    @with_transaction()
    def test_link_by_hand_settles_collision(self):
        "Staff link the right study of a collision; pushes keep it linked"
        pool = Pool()
        Party = pool.get('party.party')
        Study = pool.get('gnuhealth.radiology.study')
        user = base.create_user(
            'radiologist', "Radiologist", 'group_radiology_staff')
        Party.create([{'name': "Anna", 'code': 'PA'}])
        bert, = Party.create([{'name': "Bert", 'code': 'PB'}])
        batch = collision_batch('PA', 'PB')
        Study.push_from_pacs(batch)
        right = self.studies()['study-PB']

        base.link_by_hand(user, right, party=bert)
        result = Study.push_from_pacs(batch)

        studies = self.studies()
        right, wrong = studies['study-PB'], studies['study-PA']
        self.assertEqual(
            (right.link_state, right.party, right.linked_by),
            ('linked', bert, user))
        self.assertEqual(wrong.link_state, 'conflict')
        self.assertEqual(list(result['conflicts']), ['study-PA'])

    @with_transaction()
    def test_collision_after_link_by_hand(self):
        "A collision that arrives after a person linked the study reopens it"
        pool = Pool()
        Party = pool.get('party.party')
        Study = pool.get('gnuhealth.radiology.study')
        zoe, = Party.create([{'name': "Zoë"}])
        batch = collision_batch('PA', 'PB')
        Study.push_from_pacs(dict(batch, studies=batch['studies'][:1]))
        study = self.studies()['study-PA']
        Study.write([study], {'party': zoe.id})
        # The person linked it before the other study arrived.
        table = Study.__table__()
        Transaction().connection.cursor().execute(*table.update(
                [table.linked_at], [datetime.datetime(2000, 1, 1)]))
        Transaction().cache.clear()

        Study.push_from_pacs(dict(batch, studies=batch['studies'][1:]))

        study = self.studies()['study-PA']
        self.assertEqual(
            (study.link_state, study.party), ('conflict', zoe))
        self.assertIn("The same study UID arrived", study.link_note)

        # Linked again by hand, it stays linked.
        Study.write([study], {'party': zoe.id})
        Study.push_from_pacs(batch)
        study = self.studies()['study-PA']
        self.assertEqual((study.link_state, study.party), ('linked', zoe))

    @with_transaction()
    def test_linked_stays_linked(self):
        "New evidence against an automatic link: conflict, link kept"
        pool = Pool()
        Party = pool.get('party.party')
        Identifier = pool.get('party.identifier')
        zoe, = Party.create([{'name': "Zoë", 'code': 'P1'}])
        study = self.push_study(dicom_patient_id='P1')
        self.assertEqual((study.party, study.link_state), (zoe, 'linked'))
        ana, = Party.create([{'name': "Ana"}])

        # Ana gets the PatientID too: matching again finds two people.
        Identifier.create([{'party': ana.id, 'code': 'P1'}])
        study = type(study)(study.id)
        self.assertEqual((study.party, study.link_state), (zoe, 'conflict'))
        self.assertIn("stays linked to Zoë", study.link_note)
        self.assertIn("Ana", study.link_note)

        # A push of the same study changes nothing.
        note = study.link_note
        study = self.push_study(dicom_patient_id='P1')
        self.assertEqual(
            (study.party, study.link_state, study.link_note),
            (zoe, 'conflict', note))

    @with_transaction()
    def test_linked_stays_linked_without_evidence(self):
        "A link whose evidence is gone is kept, not undone"
        pool = Pool()
        Party = pool.get('party.party')
        zoe, = Party.create([{'name': "Zoë", 'code': 'P1'}])
        self.push_study(dicom_patient_id='P1')
        Party.write([zoe], {'code': 'P2'})

        study = self.push_study(dicom_patient_id='P1')

        self.assertEqual((study.party, study.link_state), (zoe, 'linked'))

    @with_transaction()
    def test_name_note(self):
        "A PatientName unlike the party's name is noted, not a conflict"
        pool = Pool()
        Party = pool.get('party.party')
        Party.create([{'name': "Zoë Müller", 'code': 'P1'}])

        same = self.push_study(
            '1.1', dicom_patient_id='P1', dicom_patient_name='MULLER^ZOE')
        other = self.push_study(
            '1.2', dicom_patient_id='P1', dicom_patient_name='Doe^John')

        self.assertEqual(same.link_state, 'linked')
        self.assertNotIn('PatientName', same.link_note)
        self.assertEqual(other.link_state, 'linked')
        self.assertIn("PatientName Doe^John differs", other.link_note)

    @with_transaction()
    def test_push_new_keys(self):
        "The contract's new study keys are stored, unknown keys ignored"
        pool = Pool()
        Study = pool.get('gnuhealth.radiology.study')
        batch = base.make_batch()
        batch['server']['accession_issuers'] = ['HOSP', 'HOSP-RAD']
        batch['server']['from_the_future'] = 1
        batch['studies'][0].update(
            last_update='20261201T093000', accession_issuer='OTHER',
            dicom_patient_birth_date='1980-02-29', dicom_patient_sex='F',
            from_the_future=[1])

        result = Study.push_from_pacs(batch)

        study = Study(result['studies']['study-1'])
        self.assertEqual(
            (study.pacs_last_update, study.accession_issuer,
                study.dicom_patient_birth_date, study.dicom_patient_sex,
                study.server.accession_issuers),
            ('20261201T093000', 'OTHER', datetime.date(1980, 2, 29), 'F',
                'HOSP HOSP-RAD'))
        # A sex outside DICOM's M, F and O says nothing.
        batch['studies'][0]['dicom_patient_sex'] = 'X'
        Study.push_from_pacs(batch)
        self.assertEqual(Study(study.id).dicom_patient_sex, None)

    @with_transaction()
    def test_push_without_orthanc_id(self):
        "A study without its Orthanc ID is refused, naming the study"
        pool = Pool()
        Study = pool.get('gnuhealth.radiology.study')
        batch = base.make_batch()
        batch['studies'][0]['orthanc_id'] = None

        with self.assertRaises(UserError) as cm:
            Study.push_from_pacs(batch)
        self.assertIn('orthanc_id', cm.exception.message)
        self.assertIn('1.2.3.4', cm.exception.message)

    @with_transaction()
    def test_audit_summary(self):
        "The audit reads what GNU Health holds, for the sync account only"
        pool = Pool()
        Study = pool.get('gnuhealth.radiology.study')
        sync = base.create_user('orthanc', "Orthanc", 'group_radiology_sync')
        nobody = base.create_user('nobody', "Nobody")
        batch = base.make_batch()
        batch['studies'][0]['last_update'] = '20261201T093000'
        Study.push_from_pacs(batch)
        Study.push_from_pacs({'server': {'label': 'orthanc'}, 'deleted': [
                    {'level': 'instance', 'orthanc_id': 'instance-1-1'}]})

        with Transaction().set_user(sync.id), \
                Transaction().set_context(_check_access=True):
            summary = Study.audit_summary('orthanc', ['study-1', 'unknown'])
            other = Study.audit_summary('other', ['study-1'])
        self.assertEqual(summary, {'study-1': {
                    'series': 2, 'instances': 4,
                    'last_update': '20261201T093000',
                    'reception': 'complete', 'pacs_state': 'available',
                    }})
        self.assertEqual(other, {})

        Study.push_from_pacs({'server': {'label': 'orthanc'}, 'deleted': [
                    {'level': 'series', 'orthanc_id': 'series-2'}]})
        self.assertEqual(
            Study.audit_summary('orthanc', ['study-1'])['study-1']
            ['series'], 1)
        with Transaction().set_user(nobody.id), \
                Transaction().set_context(_check_access=True), \
                self.assertRaises(AccessError):
            Study.audit_summary('orthanc', ['study-1'])


class IdentityImagingTestCase(DBTestCase):
    "Identity and conflicts of health_radiology with GNU Health"
    module = 'health_radiology'
    extras = ['health_imaging', 'health_imaging_worklist']

    push_study = base.HealthRadiologyTestCase.push_study
    create_patient = base.HealthRadiologyImagingTestCase.create_patient
    create_request = base.HealthRadiologyImagingTestCase.create_request

    @with_transaction()
    def test_clinicians_cannot_open_a_study_in_conflict(self):
        "Only radiology staff read a study in conflict, whatever the path"
        pool = Pool()
        Study = pool.get('gnuhealth.radiology.study')
        Series = pool.get('gnuhealth.radiology.series')
        Instance = pool.get('gnuhealth.radiology.instance')
        User = pool.get('res.user')
        ModelData = pool.get('ir.model.data')
        anna = self.create_patient("Anna")
        bert = self.create_patient("Bert")
        Study.push_from_pacs(collision_batch(anna.party.ref))
        linked, = Study.search([])
        self.assertEqual((linked.link_state, linked.patient), ('linked', anna))
        Study.push_from_pacs(collision_batch(anna.party.ref, bert.party.ref))
        self.assertEqual(
            {(s.link_state, s.patient) for s in Study.search([])},
            {('conflict', anna), ('conflict', None)})

        def user(login, *groups):
            user, = User.create([{'name': login, 'login': login, 'groups': [
                            ('add', [ModelData.get_id(*g.split('.'))
                                    for g in groups])]}])
            return user
        doctor = user('doctor', 'health.group_health_doctor')
        radiologist = user('radiologist', 'health.group_health_doctor',
            'health_radiology.group_radiology_staff')
        models = [Study, Series, Instance]
        everything = [len(M.search([])) for M in models]
        for login, expected in [(doctor, [0, 0, 0]), (radiologist, everything)]:
            with Transaction().set_user(login.id), \
                    Transaction().set_context(_check_access=True):
                self.assertEqual(
                    [len(M.search([])) for M in models], expected, login.login)
        with Transaction().set_user(doctor.id), \
                Transaction().set_context(_check_access=True), \
                self.assertRaises(AccessError):
            Study.read([linked.id], ['link_state'])

        # Radiology staff settle it: the study is the clinicians' again.
        Study.write([Study(linked.id)], {'patient': anna.id})
        with Transaction().set_user(doctor.id), \
                Transaction().set_context(_check_access=True):
            self.assertEqual(Study.search([]), [Study(linked.id)])

    @with_transaction()
    def test_accession_with_foreign_patient_id(self):
        "An accession equal to an order code with an outside PatientID"
        patient = self.create_patient("Zoë")
        request = self.create_request(patient)

        study = self.push_study(
            accession=request.request, dicom_patient_id='EXT-4711')

        self.assertEqual(
            (study.link_state, study.patient, study.imaging_request),
            ('conflict', None, None))
        self.assertIn(patient.party.ref, study.link_note)
        self.assertIn('EXT-4711', study.link_note)
        self.assertEqual(type(request)(request.id).state, 'draft')

    @with_transaction()
    def test_foreign_accession_issuer(self):
        "An accession from another issuer is no order code here"
        pool = Pool()
        Study = pool.get('gnuhealth.radiology.study')
        patient = self.create_patient("Zoë")
        request = self.create_request(patient)

        for issuer, state, linked_request, note in [
                ('OTHER-HOSPITAL', 'unmatched', None,
                    "issued by OTHER-HOSPITAL, not by this hospital"),
                ('HOSP', 'linked', request, "imaging request"),
                ]:
            with self.subTest(issuer=issuer):
                batch = base.make_batch()
                batch['server']['accession_issuers'] = ['HOSP']
                batch['studies'][0].update(
                    orthanc_id='study-' + issuer, study_uid='1.' + issuer,
                    accession=request.request, accession_issuer=issuer,
                    dicom_patient_id=None, series=[])
                result = Study.push_from_pacs(batch)
                study = Study(result['studies']['study-' + issuer])
                self.assertEqual(
                    (study.link_state, study.imaging_request),
                    (state, linked_request))
                self.assertIn(note, study.link_note)

    @with_transaction()
    def test_demographics(self):
        "A birth date or sex that is not the patient's: likely wrong patient"
        patient = self.create_patient(
            "Zoë", lastname="Müller", dob=datetime.date(1980, 2, 29))
        puid = patient.party.ref

        for n, (values, state) in enumerate([
                ({'dicom_patient_birth_date': '1981-01-01'}, 'conflict'),
                ({'dicom_patient_sex': 'M'}, 'conflict'),
                ({'dicom_patient_birth_date': '1980-02-29',
                        'dicom_patient_sex': 'F'}, 'linked'),
                ({'dicom_patient_sex': 'O'}, 'linked'),
                ]):
            with self.subTest(values=values):
                study = self.push_study('1.%d' % n, accession=None,
                    dicom_patient_id=puid,
                    dicom_patient_name='MÜLLER^ZOË', **values)
                self.assertEqual(study.link_state, state)
                if state == 'conflict':
                    self.assertIn("Likely the wrong patient", study.link_note)
                    self.assertEqual(study.patient, None)
                else:
                    self.assertEqual(study.patient, patient)
                    self.assertNotIn('PatientName', study.link_note)

    @with_transaction()
    def test_collision_hidden_from_clinicians(self):
        "A study in conflict leaves the lists where clinicians look"
        pool = Pool()
        Study = pool.get('gnuhealth.radiology.study')
        anna = self.create_patient("Anna")
        bert = self.create_patient("Bert")
        request = self.create_request(anna)
        batch = collision_batch(anna.party.ref, bert.party.ref)
        batch['studies'][0]['accession'] = request.request
        first = dict(batch, studies=batch['studies'][:1])
        Study.push_from_pacs(first)
        wrong = Study.search([('dicom_patient_id', '=', anna.party.ref)])[0]
        self.assertEqual(type(anna)(anna.id).radiology_studies, (wrong,))

        Study.push_from_pacs(dict(batch, studies=batch['studies'][1:]))

        wrong, right = (
            Study.search([('dicom_patient_id', '=', p.party.ref)])[0]
            for p in [anna, bert])
        self.assertEqual(
            (wrong.link_state, wrong.patient, wrong.imaging_request),
            ('conflict', anna, request))
        self.assertEqual((right.link_state, right.patient), ('conflict', None))
        for record in [anna, bert, request, wrong.imaging_result]:
            self.assertEqual(type(record)(record.id).radiology_studies, ())

