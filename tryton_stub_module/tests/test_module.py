# This file is part of orthanc-gnuhealth.  The COPYRIGHT file at the top level
# of this repository contains the full copyright notices and license terms.
import copy
import datetime
import glob
import hashlib
from unittest.mock import patch

from trytond.exceptions import UserError
from trytond.model import fields
from trytond.model.exceptions import AccessError
from trytond.pool import Pool
from trytond.tests.test_tryton import ModuleTestCase, with_transaction
from trytond.transaction import Transaction


def party_defaults():
    "Return the defaults of a party, as a client would send them"
    Party = Pool().get('party.party')
    defaults = Party.default_get(list(Party._fields), with_rec_name=False)
    return {k: v for k, v in defaults.items()
        if Party._fields[k]._type not in {'one2many', 'many2many'}
        and not isinstance(Party._fields[k], fields.Function)}


def create_user(login, name, *groups):
    "Return a new user in the groups of health_radiology named by `groups`"
    pool = Pool()
    User = pool.get('res.user')
    ModelData = pool.get('ir.model.data')
    user, = User.create([{
                'name': name, 'login': login,
                'groups': [('add', [
                            ModelData.get_id('health_radiology', g)
                            for g in groups])],
                }])
    return user


def link_by_hand(user, study, **values):
    "Run the link wizard on study as user, with values on its form"
    pool = Pool()
    Study = pool.get('gnuhealth.radiology.study')
    StudyLink = pool.get('gnuhealth.radiology.study.link', type='wizard')
    with Transaction().set_user(user.id), \
            Transaction().set_context(
                _check_access=True, active_model=Study.__name__,
                active_id=study.id, active_ids=[study.id]):
        session_id, _, _ = StudyLink.create()
        link = StudyLink(session_id)
        for name, value in values.items():
            setattr(link.start, name, value)
        link.transition_link()


def match_again():
    "Run the wizard that matches the studies again, from the menu"
    StudyMatch = Pool().get('gnuhealth.radiology.study.match', type='wizard')
    with Transaction().set_context(active_model='ir.ui.menu'):
        session_id, _, _ = StudyMatch.create()
        StudyMatch(session_id).transition_match()


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

        study = Study(result['studies']['study-1'])
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
        # OHIF and Stone are not installed on that Orthanc: not offered.
        self.assertEqual(study.ohif_url, None)
        self.assertEqual(study.stone_url, None)
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
        self.assertEqual(study.explorer_url, None)
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
                        'study_uid': '1.2.3', 'orthanc_id': 'study-3',
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

        study = Study(result['studies']['study-3'])
        self.assertEqual(study.reception, 'receiving')
        self.assertEqual(study.study_date, None)
        self.assertEqual(study.rec_name, '1.2.3')
        self.assertEqual(study.explorer_url, None)
        self.assertEqual(study.instance_count, 1)

    @with_transaction()
    def test_search_rec_name(self):
        "A search by name looks in the fields a person knows a record by"
        pool = Pool()
        Study = pool.get('gnuhealth.radiology.study')
        Series = pool.get('gnuhealth.radiology.series')
        Study.push_from_pacs(make_batch())
        study, = Study.search([])

        for text in ['1.2.3.4', 'A1', 'Thorax', 'P1', 'Müller^Zoë']:
            self.assertEqual(
                Study.search([('rec_name', '=', text)]), [study], text)
        self.assertEqual(Study.search([('rec_name', '=', 'Hôpital')]), [])
        # A negative search excludes what any of the fields matches.
        self.assertEqual(Study.search([('rec_name', '!=', 'A1')]), [])
        for text, uids in [
                ('1.2.3.4.2', ['1.2.3.4.2']),
                ('Série 1', ['1.2.3.4.1']),
                ('CHEST', []),
                ]:
            self.assertEqual([s.series_uid for s in Series.search(
                        [('rec_name', '=', text)])], uids, text)
        self.assertEqual(
            Series.search([('rec_name', 'not ilike', 'Série%')]), [])

    @with_transaction()
    def test_push_non_ascii(self):
        "Non-ASCII names survive and DICOM padding is removed"
        pool = Pool()
        Study = pool.get('gnuhealth.radiology.study')
        batch = make_batch()
        batch['studies'][0]['dicom_patient_name'] = 'Ελένη^Çelik=李^小龍\x00'
        batch['studies'][0]['description'] = 'Schädel  '

        result = Study.push_from_pacs(batch)

        study = Study(result['studies']['study-1'])
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
        batch['server']['viewers'] = ['explorer', 'ohif']

        result = Study.push_from_pacs(batch)

        study = Study(result['studies']['study-1'])
        self.assertEqual(
            study.ohif_url, 'https://viewer.example.com/?uid=1.2.3.4')
        # Each series' form opens its study in OHIF too.
        self.assertTrue(study.series)
        for series in study.series:
            self.assertEqual(series.ohif_url, study.ohif_url)

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
        Study = pool.get('gnuhealth.radiology.study')
        user = create_user('orthanc', "Orthanc", 'group_radiology_sync')

        with Transaction().set_user(user.id), \
                Transaction().set_context(_check_access=True):
            result = Study.push_from_pacs(make_batch())
            study = Study(result['studies']['study-1'])
            with self.assertRaises(AccessError):
                Study.delete([study])

    @with_transaction()
    def test_access_staff(self):
        "Staff links a study to a party but changes no PACS value"
        pool = Pool()
        Party = pool.get('party.party')
        Study = pool.get('gnuhealth.radiology.study')
        user = create_user('radiologist', "Radiologist", 'group_radiology_staff')
        party, = Party.create([{'name': "Zoë Müller"}])
        result = Study.push_from_pacs(make_batch())

        with Transaction().set_user(user.id), \
                Transaction().set_context(_check_access=True):
            study = Study(result['studies']['study-1'])
            Study.write([study], {'party': party.id})
            with self.assertRaises(AccessError):
                Study.write([study], {'accession': 'A2'})
            with self.assertRaises(AccessError):
                Study.push_from_pacs(make_batch())
            with self.assertRaises(AccessError):
                Study.delete([study])


    def push_study(self, study_uid='1.2.3.4', **values):
        "Push one study and return it"
        pool = Pool()
        Study = pool.get('gnuhealth.radiology.study')
        batch = make_batch()
        study = batch['studies'][0]
        study.update(study_uid=study_uid, **values)
        # Orthanc's study identity: the PatientID and the StudyInstanceUID.
        suffix = '-' + hashlib.sha1(('%s|%s' % (
                    study['dicom_patient_id'], study_uid)).encode()).hexdigest()[:16]
        study['orthanc_id'] = 'study' + suffix
        for series in study['series']:
            series['series_uid'] = series['series_uid'].replace(
                '1.2.3.4', study_uid, 1)
            series['orthanc_id'] += suffix
            for instance in series['instances']:
                instance['sop_instance_uid'] = instance[
                    'sop_instance_uid'].replace('1.2.3.4', study_uid, 1)
                instance['orthanc_id'] += suffix
        result = Study.push_from_pacs(batch)
        return Study(result['studies'][study['orthanc_id']])

    @with_transaction()
    def test_link_party_by_code(self):
        "A study links to the party whose code or identifier is its PatientID"
        pool = Pool()
        Party = pool.get('party.party')
        zoe, = Party.create([{'name': "Zoë", 'code': 'P1'}])
        ana, = Party.create([{
                    'name': "Ana",
                    'identifiers': [('create', [{'code': 'MRN-7'}])]}])

        by_code = self.push_study(dicom_patient_id='P1')
        by_identifier = self.push_study('1.9', dicom_patient_id='MRN-7')
        unknown = self.push_study('1.8', dicom_patient_id='X')

        self.assertEqual(
            (by_code.party, by_code.link_state), (zoe, 'linked'))
        self.assertEqual(
            (by_identifier.party, by_identifier.link_state),
            (ana, 'linked'))
        self.assertEqual(
            (unknown.party, unknown.link_state), (None, 'unmatched'))
        self.assertIn('X', unknown.link_note)
        self.assertEqual(by_code.linked_by, None)

    @with_transaction()
    def test_link_party_ambiguous(self):
        "A PatientID shared by two parties is a conflict, not a guess"
        pool = Pool()
        Party = pool.get('party.party')
        Party.create([{'name': "Zoë", 'code': 'P1'}])
        Party.create([{
                    'name': "Ana",
                    'identifiers': [('create', [{'code': 'P1'}])]}])

        study = self.push_study(dicom_patient_id='P1')

        self.assertEqual((study.party, study.link_state), (None, 'conflict'))
        self.assertIn('Zoë', study.link_note)
        self.assertIn('Ana', study.link_note)

    @with_transaction()
    def test_link_late_party(self):
        "A study that arrives before its party links when the party appears"
        pool = Pool()
        Party = pool.get('party.party')
        study = self.push_study(dicom_patient_id='P1')
        self.assertEqual(study.link_state, 'unmatched')

        party, = Party.create([{'name': "Zoë", 'code': 'P1'}])

        study = type(study)(study.id)
        self.assertEqual((study.party, study.link_state), (party, 'linked'))

    @with_transaction()
    def test_link_by_hand(self):
        "A study linked by hand records who and when and is never re-matched"
        pool = Pool()
        Party = pool.get('party.party')
        Study = pool.get('gnuhealth.radiology.study')
        user = create_user('radiologist', "Radiologist", 'group_radiology_staff')
        zoe, = Party.create([{'name': "Zoë"}])
        study = self.push_study(dicom_patient_id='P1')

        link_by_hand(user, study, party=zoe)
        with Transaction().set_user(user.id), \
                Transaction().set_context(_check_access=True), \
                self.assertRaises(AccessError):
            Study.write([study], {'link_state': 'unmatched'})

        study = Study(study.id)
        self.assertEqual(
            (study.party, study.link_state, study.linked_by),
            (zoe, 'linked', user))
        self.assertTrue(study.linked_at)
        self.assertIn("Radiologist", study.link_note)
        log, = study.link_history
        self.assertEqual((log.user, log.description), (user, "Zoë"))

        # Neither a new push nor matching again undo what a person did.
        Party.create([{'name': "Other", 'code': 'P1'}])
        self.push_study(dicom_patient_id='P1')
        match_again()
        study = Study(study.id)
        self.assertEqual((study.party, study.linked_by), (zoe, user))

    @with_transaction()
    def test_match_again(self):
        "Matching again links the unmatched studies and is safe to repeat"
        pool = Pool()
        Party = pool.get('party.party')
        Identifier = pool.get('party.identifier')
        Study = pool.get('gnuhealth.radiology.study')
        party, = Party.create([{'name': "Zoë"}])
        study = self.push_study(dicom_patient_id='MRN-7')
        # An identifier added later links the study at once.
        Identifier.create([{'party': party.id, 'code': 'MRN-7'}])
        self.assertEqual(Study(study.id).party, party)
        # Matching again changes nothing when nothing changed.
        Study.write([study], {'party': None})
        Study.write([study], {'linked_by': None, 'link_state': 'unmatched'})

        for _ in range(2):
            match_again()
            study = Study(study.id)
            self.assertEqual(
                (study.party, study.link_state), (party, 'linked'))


class HealthRadiologyImagingTestCase(ModuleTestCase):
    "Test health_radiology with GNU Health's health_imaging and worklist"
    module = 'health_radiology'
    extras = ['health_imaging', 'health_imaging_worklist']

    push_study = HealthRadiologyTestCase.push_study

    def create_patient(self, name, **values):
        pool = Pool()
        Party = pool.get('party.party')
        Patient = pool.get('gnuhealth.patient')
        party, = Party.create([{**party_defaults(),
                    'name': name, 'is_person': True, 'is_patient': True, 'gender': 'f',
                    **values}])
        patient, = Patient.search([('party', '=', party.id)])
        return patient

    def create_request(self, patient, **values):
        pool = Pool()
        Party = pool.get('party.party')
        Professional = pool.get('gnuhealth.healthprofessional')
        Uom = pool.get('product.uom')
        Template = pool.get('product.template')
        TestType = pool.get('gnuhealth.imaging.test.type')
        ImagingTest = pool.get('gnuhealth.imaging.test')
        Request = pool.get('gnuhealth.imaging.test.request')
        doctor = Professional.search([], limit=1)
        if doctor:
            doctor, = doctor
        else:
            party, = Party.create([{**party_defaults(),
                        'name': "Dr House", 'is_person': True, 'gender': 'm',
                        'is_healthprof': True}])
            doctor, = Professional.create([{'party': party.id}])
        test = ImagingTest.search([('code', '=', 'CT-CHEST')])
        if test:
            test, = test
        else:
            unit, = Uom.search([('symbol', '=', 'u')])
            template, = Template.create([{
                        'name': "CT chest", 'default_uom': unit.id,
                        'type': 'service',
                        'products': [('create', [{}])],
                        }])
            ct, = TestType.search([('code', '=', 'CT')])
            test, = ImagingTest.create([{
                        'code': 'CT-CHEST', 'name': "CT chest",
                        'test_type': ct.id,
                        'product': template.products[0].id,
                        }])
        request, = Request.create([{
                    'patient': patient.id, 'requested_test': test.id,
                    'doctor': doctor.id, **values}])
        return request

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

    @with_transaction()
    def test_link_accession(self):
        "The accession links to the request, its patient and a result"
        pool = Pool()
        Result = pool.get('gnuhealth.imaging.test.result')
        patient = self.create_patient("Zoë")
        request = self.create_request(patient)

        study = self.push_study(
            accession=request.request,
            dicom_patient_id=patient.party.ref)

        self.assertEqual(study.link_state, 'linked')
        self.assertEqual(study.patient, patient)
        self.assertEqual(study.party, patient.party)
        self.assertEqual(study.imaging_request, request)
        request = type(request)(request.id)
        self.assertEqual(request.state, 'done')
        self.assertEqual(request.worklist_status, 'done')
        result, = Result.search([('request', '=', request.id)])
        self.assertEqual(study.imaging_result, result)
        self.assertEqual(result.radiology_studies, (study,))
        self.assertEqual(patient.radiology_studies, (study,))
        self.assertEqual(request.radiology_studies, (study,))

        # A second push, or a second study of the request, reuses it all.
        self.push_study(
            accession=request.request, dicom_patient_id=patient.party.ref)
        other = self.push_study('1.5',
            accession=request.request, dicom_patient_id=patient.party.ref)
        self.assertEqual(Result.search([], count=True), 1)
        self.assertEqual(other.imaging_result, result)

    @with_transaction()
    def test_default_merge_id_is_str(self):
        "The worklist's default merge_id can travel over XML-RPC"
        pool = Pool()
        Request = pool.get('gnuhealth.imaging.test.request')

        self.assertIs(type(Request.default_merge_id()), str)

    @with_transaction()
    def test_link_merge_id(self):
        "The worklist StudyInstanceUID links to its request"
        patient = self.create_patient("Zoë")
        request = self.create_request(patient)

        study = self.push_study(request.merge_id, accession=None, series=[])

        self.assertEqual(study.imaging_request, request)
        self.assertEqual(study.patient, patient)

    @with_transaction()
    def test_link_puid(self):
        "A PatientID of any length matches a PUID or another identifier"
        patient = self.create_patient("Zoë")
        short = self.create_patient("Ana", ref='P7')
        other = self.create_patient("Eva", alternative_identification=True,
            alternative_ids=[('create', [{
                            'code': 'MRN-9',
                            'alternative_id_type': 'medical_record'}])])

        for study_uid, patient_id, expected in [
                ('1.1', patient.party.ref, patient),
                ('1.2', 'P7', short),
                ('1.3', 'MRN-9', other),
                ]:
            study = self.push_study(study_uid,
                dicom_patient_id=patient_id, accession=None)
            self.assertEqual(
                (study.patient, study.link_state, study.imaging_request),
                (expected, 'linked', None))

    @with_transaction()
    def test_link_when_the_patient_id_arrives_later(self):
        "A study waits unmatched until its PatientID is given to a patient"
        pool = Pool()
        AlternativeID = pool.get(
            'gnuhealth.person_alternative_identification')
        patient = self.create_patient("Eva")
        study = self.push_study(dicom_patient_id='MRN-77', accession=None)
        self.assertEqual((study.patient, study.link_state), (None, 'unmatched'))

        AlternativeID.create([{
                    'party': patient.party.id, 'code': 'MRN-77',
                    'alternative_id_type': 'medical_record'}])

        study = type(study)(study.id)
        self.assertEqual((study.patient, study.link_state), (patient, 'linked'))

    @with_transaction()
    def test_link_unknown(self):
        "An unknown PatientID lands unmatched without failing the batch"
        pool = Pool()
        Study = pool.get('gnuhealth.radiology.study')
        patient = self.create_patient("Zoë")
        batch = make_batch()
        second = copy.deepcopy(batch['studies'][0])
        second.update(study_uid='1.5', orthanc_id='study-5', series=[],
            dicom_patient_id=patient.party.ref, accession=None)
        batch['studies'][0].update(dicom_patient_id='UNKNOWN12345')
        batch['studies'].append(second)

        result = Study.push_from_pacs(batch)

        unknown = Study(result['studies']['study-1'])
        known = Study(result['studies']['study-5'])
        self.assertEqual(
            (unknown.patient, unknown.link_state), (None, 'unmatched'))
        self.assertEqual(unknown.accession, 'A1')
        self.assertIn('A1', unknown.link_note)
        self.assertIn('UNKNOWN12345', unknown.link_note)
        self.assertEqual((known.patient, known.link_state), (patient, 'linked'))

    @with_transaction()
    def test_link_conflict(self):
        "An accession of one patient with the PatientID of another conflicts"
        patient_a = self.create_patient("Anna")
        patient_b = self.create_patient("Bert")
        request = self.create_request(patient_a)

        study = self.push_study(
            accession=request.request, dicom_patient_id=patient_b.party.ref)

        self.assertEqual(study.link_state, 'conflict')
        self.assertEqual(
            (study.patient, study.imaging_request, study.party),
            (None, None, None))
        self.assertIn(request.request, study.link_note)
        self.assertIn(patient_a.party.ref, study.link_note)
        self.assertIn(patient_b.party.ref, study.link_note)
        self.assertEqual(type(request)(request.id).state, 'draft')

    @with_transaction()
    def test_link_done_request(self):
        "A study whose request is already done still links, on its result"
        pool = Pool()
        Request = pool.get('gnuhealth.imaging.test.request')
        Result = pool.get('gnuhealth.imaging.test.result')
        patient = self.create_patient("Zoë")
        request = self.create_request(patient)
        Request.requested([request])
        Request.done([request])
        result, = Result.create([{
                    'patient': patient.id, 'request': request.id,
                    'requested_test': request.requested_test.id,
                    'doctor': request.doctor.id,
                    'date': datetime.datetime.now()}])

        study = self.push_study(
            accession=request.request, dicom_patient_id=patient.party.ref)

        self.assertEqual(study.imaging_request, request)
        self.assertEqual(study.imaging_result, result)
        self.assertEqual(Result.search([], count=True), 1)

    @with_transaction()
    def test_link_late_request(self):
        "A study that arrives before its request links when it is created"
        patient = self.create_patient("Zoë")
        study = self.push_study(accession='LATE-1', dicom_patient_id=None)
        self.assertEqual(study.link_state, 'unmatched')

        request = self.create_request(patient, request='LATE-1')

        study = type(study)(study.id)
        self.assertEqual(
            (study.imaging_request, study.patient, study.link_state),
            (request, patient, 'linked'))

    @with_transaction()
    def test_link_late_patient(self):
        "A study that arrives before its patient links when it is created"
        study = self.push_study(accession=None, dicom_patient_id='LATE42')

        patient = self.create_patient("Zoë", ref='LATE42')

        study = type(study)(study.id)
        self.assertEqual(
            (study.patient, study.link_state), (patient, 'linked'))

    @with_transaction()
    def test_link_by_hand(self):
        "Staff link a study to a request with the wizard, or in its form"
        pool = Pool()
        Study = pool.get('gnuhealth.radiology.study')
        user = create_user('radiologist', "Radiologist", 'group_radiology_staff')
        patient = self.create_patient("Zoë")
        request = self.create_request(patient)

        def with_the_wizard(study):
            link_by_hand(user, study,
                patient=None, party=None, imaging_request=request)

        def in_the_form(study):
            # Only the request: its patient and party follow.
            with Transaction().set_user(user.id), \
                    Transaction().set_context(_check_access=True):
                Study.write([study], {'imaging_request': request.id})

        for study_uid, link in [('1.1', with_the_wizard), ('1.2', in_the_form)]:
            with self.subTest(link=link.__name__):
                study = self.push_study(
                    study_uid, accession=None, dicom_patient_id='X')

                link(study)

                study = Study(study.id)
                self.assertEqual(
                    (study.patient, study.party, study.imaging_request,
                        study.link_state, study.linked_by),
                    (patient, patient.party, request, 'linked', user))
                self.assertTrue(study.imaging_result)
        self.assertEqual(type(request)(request.id).state, 'done')

    @with_transaction()
    def test_access_sync_links(self):
        "The sync account links studies without reading patients itself"
        pool = Pool()
        Study = pool.get('gnuhealth.radiology.study')
        Patient = pool.get('gnuhealth.patient')
        user = create_user('orthanc', "Orthanc", 'group_radiology_sync')
        patient = self.create_patient("Zoë")
        request = self.create_request(patient)
        batch = make_batch()
        batch['studies'][0].update(
            accession=request.request, dicom_patient_id=patient.party.ref)

        with Transaction().set_user(user.id), \
                Transaction().set_context(_check_access=True):
            result = Study.push_from_pacs(batch)
            # GNU Health lets every user read patients; this module grants
            # the sync account nothing on them, and no link of its own.
            with self.assertRaises(AccessError):
                Patient.write([patient], {'critical_info': "x"})
            with self.assertRaises(AccessError):
                Study.write(Study.browse(list(result['studies'].values())),
                    {'patient': None})

        study = Study(result['studies']['study-1'])
        self.assertEqual(
            (study.patient, study.imaging_request), (patient, request))
        self.assertEqual(study.linked_by, None)


    @with_transaction()
    def test_worklist_orders(self):
        "The worklist lists the requested orders with the patient's data"
        pool = Pool()
        Request = pool.get('gnuhealth.imaging.test.request')
        patient = self.create_patient(
            "Zoë", lastname="Müller", dob=datetime.date(1980, 2, 29))
        requested = self.create_request(
            patient, urgent=True, date=datetime.datetime(2026, 3, 1, 8, 30))
        Request.requested([requested])
        self.create_request(patient)  # draft: not ordered yet
        performed = self.create_request(patient)
        Request.requested([performed])
        Request.write([performed], {'worklist_status': 'done'})
        requested.requested_test.aetitle = 'CT_ROOM_1'
        requested.requested_test.save()

        order, = Request.worklist_orders(['requested'])

        self.assertEqual(order, {
                'request': requested.id,
                'accession': requested.request,
                'procedure_id': requested.request_line,
                'procedure': "CT chest",
                'test_type': 'CT',
                'station_aet': 'CT_ROOM_1',
                'study_uid': requested.merge_id,
                'date': datetime.datetime(2026, 3, 1, 8, 30),
                'urgent': True,
                'comment': '',
                'patient_id': patient.party.ref,
                'patient_name': ["Müller", "Zoë"],
                'birth_date': datetime.date(1980, 2, 29),
                'sex': 'F',
                'physician_name': ['', "Dr House"],
                })

    @with_transaction()
    def test_worklist_orders_states(self):
        "The worklist names the states it may ask for"
        Request = Pool().get('gnuhealth.imaging.test.request')

        for states in [[], ['planned'], 'requested']:
            with self.subTest(states=states), \
                    self.assertRaisesRegex(UserError, 'OrderStates'):
                Request.worklist_orders(states)

    @with_transaction()
    def test_worklist_orders_access(self):
        "Only an account that may read imaging requests gets the worklist"
        pool = Pool()
        Request = pool.get('gnuhealth.imaging.test.request')
        request = self.create_request(self.create_patient("Zoë"))
        Request.requested([request])
        sync = create_user('orthanc', "Orthanc", 'group_radiology_sync')
        nobody = create_user('nobody', "Nobody")

        for user, allowed in [(sync, True), (nobody, False)]:
            with self.subTest(user=user.login), \
                    Transaction().set_user(user.id), \
                    Transaction().set_context(_check_access=True):
                if allowed:
                    self.assertEqual(
                        [o['request'] for o in Request.worklist_orders(
                                ['requested'])], [request.id])
                else:
                    with self.assertRaises(AccessError):
                        Request.worklist_orders(['requested'])

    # --- Worklist: patient data is read with the caller's rights ---

    def restrict_patients(self):
        """Take away GNU Health's read access on patients for everyone, as a
        hospital that keeps patient records to its clinical staff does, and
        return a user who may read imaging requests, tests and test types,
        but not patients"""
        pool = Pool()
        Group = pool.get('res.group')
        Model = pool.get('ir.model')
        ModelAccess = pool.get('ir.model.access')
        ModelData = pool.get('ir.model.data')
        ModelAccess.write([ModelAccess(ModelData.get_id(
                        'health', 'access_health_patient'))],
            {'perm_read': False})
        group, = Group.create([{'name': "Imaging requests only"}])
        ModelAccess.create([{
                    'model': model.id, 'group': group.id,
                    'perm_read': True, 'perm_write': False,
                    'perm_create': False, 'perm_delete': False,
                    } for model in Model.search([('model', 'in', [
                                'gnuhealth.imaging.test.request',
                                'gnuhealth.imaging.test',
                                'gnuhealth.imaging.test.type'])])])
        user = create_user('requests', "Requests only")
        user.groups += (group,)
        user.save()
        return user

    @with_transaction()
    def test_worklist_orders_refused_without_patient_access(self):
        "The worklist refuses an account that may not read the patients"
        Request = Pool().get('gnuhealth.imaging.test.request')
        request = self.create_request(self.create_patient("Zoë"))
        Request.requested([request])
        user = self.restrict_patients()

        with Transaction().set_user(user.id), \
                Transaction().set_context(_check_access=True):
            self.assertEqual(Request.search([]), [request])
            # gnuhealth.patient's name in ir.model
            with self.assertRaisesRegex(AccessError, '^You are not allowed to '
                    'access "Patient related information"'):
                Request.worklist_orders(['requested'])

    @with_transaction()
    def test_worklist_orders_sync_reads_restricted_patients(self):
        "The sync group keeps the worklist where patients are restricted"
        Request = Pool().get('gnuhealth.imaging.test.request')
        patient = self.create_patient("Zoë")
        request = self.create_request(patient)
        Request.requested([request])
        self.restrict_patients()
        sync = create_user('orthanc', "Orthanc", 'group_radiology_sync')

        with Transaction().set_user(sync.id), \
                Transaction().set_context(_check_access=True):
            order, = Request.worklist_orders(['requested'])
        self.assertEqual(
            (order['request'], order['patient_id']),
            (request.id, patient.party.ref))


del ModuleTestCase
