# This file is part of orthanc-gnuhealth.  The COPYRIGHT file at the top level
# of this repository contains the full copyright notices and license terms.
"""A study linked by hand: who linked it, when, and its link history

The automatic matcher (link.py, link_imaging.py) fills the link fields
with the context key _radiology_matching; any other write of them, from
the link wizard (link_wizard.py) or a form, is a person's decision,
recorded with who and when, and never overridden by the matcher.
"""

import datetime

from trytond.i18n import gettext
from trytond.model import ModelSQL, ModelView, fields
from trytond.pool import Pool, PoolMeta
from trytond.transaction import Transaction, without_check_access


class Study(metaclass=PoolMeta):
    __name__ = 'gnuhealth.radiology.study'

    link_history = fields.One2Many(
        'gnuhealth.radiology.study.link_log', 'study', "Link History",
        readonly=True, help="Who linked the study by hand, and when.")

    @classmethod
    def write(cls, *args):
        manual = not Transaction().context.get('_radiology_matching')
        link_fields = cls._link_fields()
        touched = []
        actions = iter(args)
        for records, values in zip(actions, actions):
            if manual and link_fields & set(values):
                touched.extend(records)
        super().write(*args)
        if touched:
            cls._record_manual_link(cls.browse(list({s.id for s in touched})))

    @classmethod
    def _manual_link_values(cls, study):
        "Return the values to complete the links a person set on study"
        return {}

    def _is_linked(self):
        return bool(self.party)

    @classmethod
    def _record_manual_link(cls, studies):
        "Record who linked the studies by hand, and when"
        pool = Pool()
        User = pool.get('res.user')
        LinkLog = pool.get('gnuhealth.radiology.study.link_log')
        transaction = Transaction()
        now = datetime.datetime.now()
        user = User(transaction.user)
        args, logs = [], []
        with without_check_access(), \
                transaction.set_context(_radiology_matching=True):
            for study in studies:
                values = cls._manual_link_values(study)
                if values:
                    cls.write([study], values)
            studies = cls.browse([s.id for s in studies])
            for study in studies:
                linked = study._is_linked()
                note = gettext(
                    'health_radiology.msg_linked_by_hand' if linked
                    else 'health_radiology.msg_unlinked_by_hand',
                    user=user.rec_name)
                args.extend(([study], {
                            'link_state': 'linked' if linked else 'unmatched',
                            'link_note': note,
                            'linked_by': user.id,
                            'linked_at': now,
                            }))
                logs.append({
                        'study': study.id,
                        'user': user.id,
                        'date': now,
                        'description': study._link_description(),
                        })
            cls.write(*args)
            LinkLog.create(logs)
            cls._clinical_linked(cls.browse([s.id for s in studies]))


class StudyImaging(metaclass=PoolMeta):
    # With health_imaging: a person's link to a patient or an order; the
    # party and the imaging result follow it.
    __name__ = 'gnuhealth.radiology.study'

    def _is_linked(self):
        return super()._is_linked() or bool(self.patient)

    @classmethod
    def _manual_link_values(cls, study):
        values = super()._manual_link_values(study)
        patient = study.patient
        if study.imaging_request:
            patient = study.imaging_request.patient
        if patient != study.patient:
            values['patient'] = patient.id if patient else None
        if patient and study.party != patient.party:
            values['party'] = patient.party.id
        result = None
        if study.imaging_request and study.imaging_result:
            if study.imaging_result.request == study.imaging_request:
                result = study.imaging_result
        if result != study.imaging_result:
            values['imaging_result'] = None
        return values


class StudyLinkLog(ModelSQL, ModelView):
    "Radiology Study Link History"
    __name__ = 'gnuhealth.radiology.study.link_log'

    study = fields.Many2One(
        'gnuhealth.radiology.study', "Study", required=True, readonly=True,
        ondelete='CASCADE', help="The study linked by hand.")
    user = fields.Many2One(
        'res.user', "User", readonly=True, ondelete='RESTRICT',
        help="The person who linked the study.")
    date = fields.DateTime(
        "Date", readonly=True, help="When the study was linked.")
    description = fields.Char(
        "Linked To", readonly=True,
        help="What the study was linked to; empty when it was unlinked.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [('date', 'DESC'), ('id', 'DESC')]
