# This file is part of orthanc-gnuhealth.  The COPYRIGHT file at the top level
# of this repository contains the full copyright notices and license terms.
"""Outside images uploaded by radiology staff, claimed by one Orthanc node
and reported back (issue 15)"""
import datetime

from trytond.exceptions import UserError
from trytond.model.exceptions import AccessError, DomainValidationError
from trytond.pool import Pool
from trytond.tests.test_tryton import _DBTestCase as DBTestCase
from trytond.tests.test_tryton import with_transaction
from trytond.transaction import Transaction

from . import test_module as base


class UploadTestCase(DBTestCase):
    "Test the uploads of health_radiology with GNU Health"
    module = 'health_radiology'
    extras = base.HealthRadiologyImagingTestCase.extras

    create_patient = base.HealthRadiologyImagingTestCase.create_patient
    create_request = base.HealthRadiologyImagingTestCase.create_request
    push_study = base.HealthRadiologyImagingTestCase.push_study

    def upload(self, patient, **values):
        Upload = Pool().get('gnuhealth.radiology.upload')
        upload, = Upload.create([{
                    'patient': patient.id, 'filename': 'cd.zip',
                    'data': b'PK\x03\x04', **values}])
        return upload

    def as_user(self, user):
        return Transaction().set_user(user.id), Transaction().set_context(
            _check_access=True)

    @with_transaction()
    def test_staff_uploads(self):
        "Radiology staff create an upload; it waits, in their name"
        user = base.create_user('rita', "Rita", 'group_radiology_staff')
        patient = self.create_patient("Zoë", lastname="Müller")
        set_user, check = self.as_user(user)
        with set_user, check:
            upload = self.upload(patient, state='done', uploader=1)
            self.assertEqual(upload.state, 'pending')
            self.assertEqual(upload.uploader.id, user.id)
            self.assertIsInstance(upload.uploaded, datetime.datetime)
            self.assertEqual(upload.data, b'PK\x03\x04')
            self.assertEqual(upload.filename, 'cd.zip')

    @with_transaction()
    def test_request_of_the_patient(self):
        "An upload answers an imaging request of its own patient only"
        zoe = self.create_patient("Zoë")
        ana = self.create_patient("Ana")
        request = self.create_request(zoe)
        upload = self.upload(zoe, imaging_request=request.id)
        self.assertEqual(upload.imaging_request, request)
        with self.assertRaises(DomainValidationError):
            self.upload(ana, imaging_request=request.id)

    @with_transaction()
    def test_others_refused(self):
        "A clinician outside the Radiology group cannot upload nor claim"
        pool = Pool()
        Upload = pool.get('gnuhealth.radiology.upload')
        ModelData = pool.get('ir.model.data')
        patient = self.create_patient("Zoë")
        clinician = base.create_user('clara', "Clara")
        clinician.groups += (pool.get('res.group')(
                ModelData.get_id('health', 'group_health_doctor')),)
        clinician.save()
        staff = base.create_user('rita', "Rita", 'group_radiology_staff')
        for user in [clinician, staff]:
            set_user, check = self.as_user(user)
            with self.subTest(user=user.login), set_user, check:
                if user == clinician:
                    with self.assertRaises(AccessError):
                        self.upload(patient)
                with self.assertRaises(AccessError):
                    Upload.claim_uploads('orthanc', 5)

    @with_transaction()
    def test_claim(self):
        "The sync account claims each pending upload once, with the patient"
        Upload = Pool().get('gnuhealth.radiology.upload')
        patient = self.create_patient(
            "Zoë", lastname="Müller", dob=datetime.date(1980, 2, 29))
        request = self.create_request(patient)
        first = self.upload(patient, imaging_request=request.id)
        second = self.upload(patient, filename='b.dcm')
        sync = base.create_user('orthanc', "Orthanc", 'group_radiology_sync')

        set_user, check = self.as_user(sync)
        with set_user, check:
            claimed = Upload.claim_uploads('node-a', 1)
            self.assertEqual(claimed, [{
                        'id': first.id, 'filename': 'cd.zip',
                        'data': b'PK\x03\x04',
                        'patient_id': patient.party.ref,
                        'patient_name': 'Müller^Zoë',
                        'birth_date': '19800229', 'sex': 'F',
                        'accession': request.request,
                        }])
            # Another node gets the other one; nothing is left for a third.
            self.assertEqual(
                [c['id'] for c in Upload.claim_uploads('node-b', 5)],
                [second.id])
            self.assertEqual(Upload.claim_uploads('node-c', 5), [])
            # A node that restarted is given its own imports again.
            self.assertEqual(
                [c['id'] for c in Upload.claim_uploads('node-a', 5)],
                [first.id])
            with self.assertRaises(UserError):
                Upload.claim_uploads('', 5)
        first = Upload(first.id)
        self.assertEqual((first.state, first.node), ('importing', 'node-a'))

    @with_transaction()
    def test_claim_race(self):
        "An upload another node took after it was read is not taken again"
        Upload = Pool().get('gnuhealth.radiology.upload')
        patient = self.create_patient("Zoë")
        first, second = self.upload(patient), self.upload(patient)
        # Both read as pending by node-a; node-b claims the first meanwhile.
        self.assertEqual(Upload._take([first.id], 'node-b'), [first.id])
        self.assertEqual(
            Upload._take([first.id, second.id], 'node-a'), [second.id])
        self.assertEqual(
            [(u.state, u.node) for u in Upload.browse([first, second])],
            [('importing', 'node-b'), ('importing', 'node-a')])

    @with_transaction()
    def test_finish(self):
        "The node reports the counts, the per-file results and the studies"
        Upload = Pool().get('gnuhealth.radiology.upload')
        patient = self.create_patient("Zoë")
        upload = self.upload(patient)
        study = self.push_study(dicom_patient_id=patient.party.ref)
        sync = base.create_user('orthanc', "Orthanc", 'group_radiology_sync')
        result = {
            'state': 'done', 'message': "2 stored", 'stored': 2, 'skipped': 1,
            'failed': 0, 'results': "a.dcm: stored\nDICOMDIR: skipped",
            'studies': [study.orthanc_id, 'not-pushed-yet'],
            }
        set_user, check = self.as_user(sync)
        with set_user, check:
            with self.assertRaises(UserError):
                # Not claimed yet
                Upload.finish_upload(upload.id, result)
            Upload.claim_uploads('node-a', 5)
            with self.assertRaises(UserError):
                Upload.finish_upload(upload.id, {**result, 'state': 'pending'})
            Upload.finish_upload(upload.id, result)
        upload = Upload(upload.id)
        self.assertEqual(
            (upload.state, upload.stored, upload.skipped, upload.failed),
            ('done', 2, 1, 0))
        self.assertEqual(upload.results, "a.dcm: stored\nDICOMDIR: skipped")
        self.assertEqual(upload.message, "2 stored")
        self.assertEqual(list(upload.studies), [study])
        self.assertIsInstance(upload.finished, datetime.datetime)

    @with_transaction()
    def test_retry(self):
        "Staff give a failed upload back to the nodes; a clinician cannot"
        pool = Pool()
        Upload = pool.get('gnuhealth.radiology.upload')
        patient = self.create_patient("Zoë")
        upload = self.upload(patient)
        Upload.claim_uploads('node-a', 1)
        Upload.finish_upload(upload.id, {'state': 'failed', 'message': "gone"})
        staff = base.create_user('rita', "Rita", 'group_radiology_staff')
        nobody = base.create_user('nobody', "Nobody")
        set_user, check = self.as_user(nobody)
        with set_user, check, self.assertRaises(AccessError):
            Upload.retry([Upload(upload.id)])
        set_user, check = self.as_user(staff)
        with set_user, check:
            Upload.retry([Upload(upload.id)])
        upload = Upload(upload.id)
        self.assertEqual((upload.state, upload.node), ('pending', None))
        self.assertEqual(
            [c['id'] for c in Upload.claim_uploads('node-b', 1)], [upload.id])

    @with_transaction()
    def test_request_gives_patient(self):
        "An upload from an imaging request is of the request's patient"
        Upload = Pool().get('gnuhealth.radiology.upload')
        patient = self.create_patient("Zoë")
        request = self.create_request(patient)
        with Transaction().set_context(default_imaging_request=request.id):
            defaults = Upload.default_get(['patient', 'imaging_request'])
        self.assertEqual(defaults['patient'], patient.id)
        self.assertEqual(defaults['imaging_request'], request.id)
