# This file is part of orthanc-gnuhealth.  The COPYRIGHT file at the top level
# of this repository contains the full copyright notices and license terms.
from trytond.exceptions import UserError
from trytond.model.exceptions import AccessError
from trytond.pool import Pool
from trytond.pyson import PYSONEncoder
from trytond.tests.test_tryton import _DBTestCase as DBTestCase
from trytond.tests.test_tryton import with_transaction
from trytond.transaction import Transaction

from ..snapshot import bulk_create
from .test_module import create_user, make_batch

INSTANCE = 'gnuhealth.radiology.instance'
SERIES = 'gnuhealth.radiology.series'


def pushed_series():
    "The id of the first series of make_batch()'s study, pushed"
    Study = Pool().get('gnuhealth.radiology.study')
    study = Study(Study.push_from_pacs(make_batch())['studies']['study-1'])
    return study.series[0].id


def insert_instance(series_id, sop_instance_uid):
    "One instance of the series, inserted in bulk"
    bulk_create(Pool().get(INSTANCE), 'series', 'sop_instance_uid', [(
                (series_id, sop_instance_uid), {
                    'series': series_id, 'sop_instance_uid': sop_instance_uid,
                    'pacs_state': 'available'})])


class BulkCreateTestCase(DBTestCase):
    "The series and instances of a push, inserted in bulk (snapshot.py)"
    module = 'health_radiology'

    def stored(self, Model, records):
        "The stored values of records, without those that differ by design"
        names = [
            n for n, f in Model._fields.items()
            if not hasattr(f, 'set') and n not in {
                'id', 'create_date', 'sop_instance_uid', 'orthanc_id'}]
        return [{n: r[n] for n in names} for r in Model.read(
                    list(map(int, records)), names)]

    @with_transaction()
    def test_rows_are_the_records_create_makes(self):
        "An instance inserted in bulk is stored as Instance.create stores it"
        pool = Pool()
        Study = pool.get('gnuhealth.radiology.study')
        Instance = pool.get(INSTANCE)
        study = Study(Study.push_from_pacs(make_batch())['studies']['study-1'])
        series = study.series[0]
        bulk, = Instance.search([
                ('series', '=', series.id),
                ('sop_instance_uid', '=', '1.2.3.4.1.1')])
        by_orm, = Instance.create([{
                    'series': series.id, 'sop_instance_uid': '1.2.3.4.1.99',
                    'orthanc_id': 'instance-1-99', 'number': 1,
                    'pacs_state': 'available'}])

        self.assertEqual(
            self.stored(Instance, [bulk]), self.stored(Instance, [by_orm]))
        self.assertEqual(bulk.create_uid.id, Transaction().user)
        self.assertTrue(bulk.create_date)
        # As ModelSQL.create: the transaction knows them as created.
        self.assertLessEqual(
            {bulk.id, series.id},
            Transaction().create_records[INSTANCE]
            | Transaction().create_records[SERIES])
        self.assertEqual(
            [(s.series_uid, s.modality, s.number, s.body_part)
                for s in study.series],
            [('1.2.3.4.1', 'CT', 1, 'CHEST'), ('1.2.3.4.2', 'CT', 2, 'CHEST')])

    @with_transaction()
    def test_a_duplicate_is_refused_with_the_constraint_message(self):
        "The unique constraint holds for rows inserted in bulk"
        series_id = pushed_series()
        # As a concurrent push would: the key is stored but was not seen.
        with self.assertRaises(UserError) as error:
            insert_instance(series_id, '1.2.3.4.1.1')
        self.assertIn('SOP Instance UID only once', str(error.exception))

    @with_transaction()
    def test_access_is_checked(self):
        "A user who may not create instances cannot insert them in bulk"
        series_id = pushed_series()
        user = create_user('staff', "Staff", 'group_radiology_staff')
        with Transaction().set_user(user.id), \
                Transaction().set_context(_check_access=True):
            with self.assertRaises(AccessError):
                insert_instance(series_id, '9.9')

    @with_transaction()
    def test_record_rules_on_create_are_checked(self):
        "A record rule on creating instances holds for rows inserted in bulk"
        pool = Pool()
        Study = pool.get('gnuhealth.radiology.study')
        RuleGroup = pool.get('ir.rule.group')
        Model = pool.get('ir.model')
        model, = Model.search([('model', '=', INSTANCE)])
        RuleGroup.create([{
                    'name': "Numbered images only", 'model': model.id,
                    'global_p': True, 'perm_read': False, 'perm_write': False,
                    'perm_create': True, 'perm_delete': False,
                    'rules': [('create', [{
                                    'domain': PYSONEncoder().encode(
                                        [('number', '>', 100)])}])],
                    }])
        user = create_user('orthanc', "Orthanc", 'group_radiology_sync')
        with Transaction().set_user(user.id), \
                Transaction().set_context(_check_access=True):
            with self.assertRaises(AccessError):
                Study.push_from_pacs(make_batch())
