# This file is part of orthanc-gnuhealth.  The COPYRIGHT file at the top level
# of this repository contains the full copyright notices and license terms.
import copy
import datetime
import glob
from unittest.mock import patch

from trytond.exceptions import UserError
from trytond.model.exceptions import AccessError
from trytond.pool import Pool
from trytond.tests.test_tryton import ModuleTestCase, with_transaction
from trytond.transaction import Transaction


def make_batch():
    "Return a batch of one CT study with two series, as the plugin sends it"
    def series(number, count):
        uid = '1.2.3.4.%d' % number
        return {
            'series_uid': uid,
            'orthanc_id': 'series-%d' % number,
            'modality': 'CT',
            'number': number,
            'description': "Série %d" % number,
            'body_part': 'CHEST',
            'instances': [{
                    'sop_instance_uid': '%s.%d' % (uid, i),
                    'orthanc_id': 'instance-%d-%d' % (number, i),
                    'number': i,
                    } for i in range(1, count + 1)],
            }
    return {
        'server': {
            'label': 'orthanc',
            'public_url': 'http://pacs.example.com:8042/',
            'viewers': ['explorer', 'webviewer'],
            },
        'studies': [{
                'study_uid': '1.2.3.4',
                'orthanc_id': 'study-1',
                'accession': 'A1',
                'dicom_patient_id': 'P1',
                'dicom_patient_name': 'Müller^Zoë',
                'study_date': '2024-01-31',
                'study_time': '13:45:10',
                'description': "Thorax",
                'modalities': 'CT',
                'referring_physician': 'Dr^Who',
                'institution': 'Hôpital',
                'complete': True,
                'series': [series(1, 3), series(2, 2)],
                }],
        'deleted': [],
        }


class HealthRadiologyTestCase(ModuleTestCase):
    "Test health_radiology on plain Tryton"
    module = 'health_radiology'

    def test_view(self):
        # The views that extend the study with GNU Health's fields load only
        # with health_imaging: HealthRadiologyImagingTestCase checks them.
        real_glob = glob.glob

        def glob_plain(pattern):
            return [f for f in real_glob(pattern)
                if not f.endswith('_imaging.xml')]
        with patch.object(glob, 'glob', glob_plain):
            super().test_view()

    def counts(self):
        pool = Pool()
        return tuple(
            pool.get('gnuhealth.radiology.%s' % name).search([], count=True)
            for name in ['server', 'study', 'series', 'instance'])

    @with_transaction()
    def test_push_creates_everything(self):
        "Push a study creates the server, study, series and instances"
        pool = Pool()
        Study = pool.get('gnuhealth.radiology.study')

        result = Study.push_from_pacs(make_batch())

        study = Study(result['studies']['1.2.3.4'])
        self.assertEqual(self.counts(), (1, 1, 2, 5))
        self.assertEqual(study.server.label, 'orthanc')
        self.assertTrue(study.server.last_contact)
        self.assertEqual(study.server.viewers, 'explorer webviewer')
        self.assertEqual(study.study_date, datetime.date(2024, 1, 31))
        self.assertEqual(study.study_time, datetime.time(13, 45, 10))
        self.assertEqual(study.reception, 'complete')
        self.assertEqual(study.pacs_state, 'available')
        self.assertEqual(study.instance_count, 5)
        self.assertTrue(study.last_sync)
        self.assertEqual(study.rec_name, "CT 2024-01-31 Thorax (A1)")
        self.assertEqual(
            [(s.number, s.instance_count) for s in study.series],
            [(1, 3), (2, 2)])
        self.assertEqual(
            study.ohif_url, 'http://pacs.example.com:8042'
            '/ohif/viewer?StudyInstanceUIDs=1.2.3.4')
        self.assertEqual(
            study.stone_url, 'http://pacs.example.com:8042'
            '/stone-webviewer/index.html?study=1.2.3.4')
        self.assertEqual(
            study.explorer_url, 'http://pacs.example.com:8042'
            '/app/explorer.html#study?uuid=study-1')
        self.assertEqual(
            study.series[0].webviewer_url, 'http://pacs.example.com:8042'
            '/web-viewer/app/viewer.html?series=series-1')

    @with_transaction()
    def test_push_twice_is_noop(self):
        "Pushing the same batch again changes nothing"
        pool = Pool()
        Study = pool.get('gnuhealth.radiology.study')
        Series = pool.get('gnuhealth.radiology.series')
        Instance = pool.get('gnuhealth.radiology.instance')

        first = Study.push_from_pacs(make_batch())
        study, = Study.search([])
        last_sync = study.last_sync
        records = [Model.search([]) for Model in [Series, Instance]]
        write_dates = [r.write_date for rs in records for r in rs]

        second = Study.push_from_pacs(make_batch())

        self.assertEqual(first, second)
        self.assertEqual(self.counts(), (1, 1, 2, 5))
        study, = Study.search([])
        self.assertEqual(study.last_sync, last_sync)
        self.assertEqual(
            [Model.search([]) for Model in [Series, Instance]], records)
        self.assertEqual(
            [r.write_date for rs in records for r in rs], write_dates)

    @with_transaction()
    def test_push_removed_series(self):
        "A series absent from the snapshot is marked deleted with its images"
        pool = Pool()
        Study = pool.get('gnuhealth.radiology.study')
        Series = pool.get('gnuhealth.radiology.series')
        Instance = pool.get('gnuhealth.radiology.instance')
        batch = make_batch()
        Study.push_from_pacs(batch)

        del batch['studies'][0]['series'][1]
        Study.push_from_pacs(batch)

        first, second = Series.search([], order=[('number', 'ASC')])
        self.assertEqual(first.pacs_state, 'available')
        self.assertEqual(second.pacs_state, 'deleted')
        self.assertEqual(
            {i.pacs_state for i in second.instances}, {'deleted'})
        self.assertEqual(second.webviewer_url, None)
        self.assertEqual(self.counts(), (1, 1, 2, 5))
        study, = Study.search([])
        self.assertEqual(study.instance_count, 3)
        self.assertEqual(
            Instance.search([('pacs_state', '=', 'available')], count=True),
            3)

        # The series comes back when Orthanc receives it again.
        Study.push_from_pacs(make_batch())
        second = Series(second.id)
        self.assertEqual(second.pacs_state, 'available')
        self.assertEqual(
            {i.pacs_state for i in second.instances}, {'available'})

    @with_transaction()
    def test_push_deleted(self):
        "The deleted list marks the resources and their content"
        pool = Pool()
        Study = pool.get('gnuhealth.radiology.study')
        Series = pool.get('gnuhealth.radiology.series')
        Instance = pool.get('gnuhealth.radiology.instance')
        Study.push_from_pacs(make_batch())

        Study.push_from_pacs({
                'server': {'label': 'orthanc'},
                'deleted': [
                    {'level': 'instance', 'orthanc_id': 'instance-1-1'},
                    {'level': 'series', 'orthanc_id': 'series-2'},
                    ],
                })
        self.assertEqual(
            [i.orthanc_id for i in Instance.search([
                        ('pacs_state', '=', 'deleted')],
                    order=[('orthanc_id', 'ASC')])],
            ['instance-1-1', 'instance-2-1', 'instance-2-2'])
        self.assertEqual(
            [s.pacs_state for s in Series.search(
                    [], order=[('number', 'ASC')])],
            ['available', 'deleted'])

        Study.push_from_pacs({
                'server': {'label': 'orthanc'},
                'deleted': [{'level': 'study', 'orthanc_id': 'study-1'}],
                })
        study, = Study.search([])
        self.assertEqual(study.pacs_state, 'deleted')
        self.assertEqual(study.ohif_url, None)
        self.assertEqual(study.instance_count, 0)
        self.assertEqual(
            Instance.search([('pacs_state', '=', 'available')]), [])
        self.assertEqual(self.counts(), (1, 1, 2, 5))

    @with_transaction()
    def test_push_deleted_other_server(self):
        "A deletion on one server does not touch another server's studies"
        pool = Pool()
        Study = pool.get('gnuhealth.radiology.study')
        Study.push_from_pacs(make_batch())

        Study.push_from_pacs({
                'server': {'label': 'other'},
                'deleted': [{'level': 'study', 'orthanc_id': 'study-1'}],
                })

        study, = Study.search([])
        self.assertEqual(study.pacs_state, 'available')

    @with_transaction()
    def test_push_minimal_study(self):
        "A study without optional values is stored as still receiving"
        pool = Pool()
        Study = pool.get('gnuhealth.radiology.study')

        result = Study.push_from_pacs({
                'server': {'label': 'orthanc'},
                'studies': [{
                        'study_uid': '1.2.3', 'orthanc_id': None,
                        'accession': None, 'study_date': None,
                        'study_time': None, 'complete': False,
                        'series': [{
                                'series_uid': '1.2.3.1', 'number': None,
                                'instances': [{
                                        'sop_instance_uid': '1.2.3.1.1',
                                        }],
                                }],
                        }],
                })

        study = Study(result['studies']['1.2.3'])
        self.assertEqual(study.reception, 'receiving')
        self.assertEqual(study.study_date, None)
        self.assertEqual(study.rec_name, '1.2.3')
        self.assertEqual(study.ohif_url, None)
        self.assertEqual(study.explorer_url, None)
        self.assertEqual(study.instance_count, 1)

    @with_transaction()
    def test_push_non_ascii(self):
        "Non-ASCII names survive and DICOM padding is removed"
        pool = Pool()
        Study = pool.get('gnuhealth.radiology.study')
        batch = make_batch()
        batch['studies'][0]['dicom_patient_name'] = 'Ελένη^Çelik=李^小龍\x00'
        batch['studies'][0]['description'] = 'Schädel  '

        result = Study.push_from_pacs(batch)

        study = Study(result['studies']['1.2.3.4'])
        self.assertEqual(study.dicom_patient_name, 'Ελένη^Çelik=李^小龍')
        self.assertEqual(study.description, 'Schädel')
        self.assertEqual(study.series[0].description, 'Série 1')

    @with_transaction()
    def test_push_invalid(self):
        "Invalid studies raise a UserError naming the study"
        pool = Pool()
        Study = pool.get('gnuhealth.radiology.study')

        for change, name in [
                ({'study_uid': None}, 'study_uid'),
                ({'study_uid': '1' * 65}, 'study_uid'),
                ({'description': 'x' * 5000}, 'description'),
                ({'description': 42}, 'description'),
                ({'description': '\ud800'}, 'description'),
                ({'study_date': '2024-13-45'}, 'study_date'),
                ({'study_time': 'noon'}, 'study_time'),
                ({'series': 'all'}, 'series'),
                ({'series': [{'series_uid': '1.2', 'number': 'two'}]},
                    'number'),
                ({'series': [{'number': 1}]}, 'series_uid'),
                ]:
            with self.subTest(change=change):
                batch = make_batch()
                batch['studies'][0].update(change)
                with self.assertRaises(UserError) as cm:
                    Study.push_from_pacs(batch)
                self.assertIn(name, cm.exception.message)
                self.assertIn('study-1', cm.exception.message)

    @with_transaction()
    def test_push_invalid_batch(self):
        "Invalid batches raise a UserError"
        pool = Pool()
        Study = pool.get('gnuhealth.radiology.study')

        for batch in [
                None,
                {'server': None},
                {'server': {'label': ''}},
                {'server': {'label': 'orthanc'}, 'studies': 'all'},
                {'server': {'label': 'orthanc'},
                    'deleted': [{'level': 'patient', 'orthanc_id': 'x'}]},
                ]:
            with self.subTest(batch=batch):
                with self.assertRaises(UserError):
                    Study.push_from_pacs(batch)

    @with_transaction()
    def test_push_templates(self):
        "The templates pushed by the plugin build the viewer links"
        pool = Pool()
        Study = pool.get('gnuhealth.radiology.study')
        batch = make_batch()
        batch['server']['templates'] = {
            'ohif': 'https://viewer.example.com/?uid={study_uid}'}

        result = Study.push_from_pacs(batch)

        study = Study(result['studies']['1.2.3.4'])
        self.assertEqual(
            study.ohif_url, 'https://viewer.example.com/?uid=1.2.3.4')

    @with_transaction()
    def test_push_many_instances(self):
        "A batch of many studies with many images is stored in bulk"
        pool = Pool()
        Study = pool.get('gnuhealth.radiology.study')
        batch = make_batch()
        template = batch['studies'][0]
        template['series'][0]['instances'] = [{
                'sop_instance_uid': '1.2.3.4.1.%d' % i,
                'orthanc_id': 'instance-%d' % i,
                'number': i,
                } for i in range(1000)]
        batch['studies'] = []
        for n in range(10):
            study = copy.deepcopy(template)
            study['study_uid'] = '1.2.3.%d' % n
            study['orthanc_id'] = 'study-%d' % n
            batch['studies'].append(study)

        Study.push_from_pacs(batch)
        Study.push_from_pacs(batch)

        self.assertEqual(self.counts(), (1, 10, 20, 10020))

    @with_transaction()
    def test_access_sync(self):
        "The sync account pushes but deletes nothing"
        pool = Pool()
        User = pool.get('res.user')
        ModelData = pool.get('ir.model.data')
        Study = pool.get('gnuhealth.radiology.study')
        user, = User.create([{
                    'name': "Orthanc", 'login': 'orthanc',
                    'groups': [('add', [ModelData.get_id(
                                    'health_radiology',
                                    'group_radiology_sync')])],
                    }])

        with Transaction().set_user(user.id), \
                Transaction().set_context(_check_access=True):
            result = Study.push_from_pacs(make_batch())
            study = Study(result['studies']['1.2.3.4'])
            with self.assertRaises(AccessError):
                Study.delete([study])

    @with_transaction()
    def test_access_staff(self):
        "Staff links a study to a party but changes no PACS value"
        pool = Pool()
        User = pool.get('res.user')
        ModelData = pool.get('ir.model.data')
        Party = pool.get('party.party')
        Study = pool.get('gnuhealth.radiology.study')
        user, = User.create([{
                    'name': "Radiologist", 'login': 'radiologist',
                    'groups': [('add', [ModelData.get_id(
                                    'health_radiology',
                                    'group_radiology_staff')])],
                    }])
        party, = Party.create([{'name': "Zoë Müller"}])
        result = Study.push_from_pacs(make_batch())

        with Transaction().set_user(user.id), \
                Transaction().set_context(_check_access=True):
            study = Study(result['studies']['1.2.3.4'])
            Study.write([study], {'party': party.id})
            with self.assertRaises(AccessError):
                Study.write([study], {'accession': 'A2'})
            with self.assertRaises(AccessError):
                Study.push_from_pacs(make_batch())
            with self.assertRaises(AccessError):
                Study.delete([study])


class HealthRadiologyImagingTestCase(ModuleTestCase):
    "Test health_radiology with GNU Health's health_imaging"
    module = 'health_radiology'
    extras = ['health_imaging']

    @with_transaction()
    def test_clinical_links(self):
        "The study links to a patient and an imaging request"
        pool = Pool()
        Study = pool.get('gnuhealth.radiology.study')

        self.assertEqual(
            Study.patient.model_name, 'gnuhealth.patient')
        self.assertEqual(
            Study.imaging_request.model_name,
            'gnuhealth.imaging.test.request')


del ModuleTestCase
