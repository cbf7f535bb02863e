# This file is part of orthanc-gnuhealth.  The COPYRIGHT file at the top level
# of this repository contains the full copyright notices and license terms.
"The wizards of radiology staff: link studies by hand, match them again"

from trytond.model import ModelView, fields
from trytond.pool import Pool, PoolMeta
from trytond.transaction import Transaction
from trytond.wizard import Button, StateTransition, StateView, Wizard

from .link_imaging import imaging_request_field


class StudyLinkStart(ModelView):
    "Link Radiology Studies"
    __name__ = 'gnuhealth.radiology.study.link.start'

    party = fields.Many2One(
        'party.party', "Party",
        help="The person the images belong to. "
        "Leave empty to unlink the studies.")

    def link_values(self):
        "Return the values to write on the studies"
        return {'party': self.party.id if self.party else None}


class StudyLink(Wizard):
    "Link Radiology Studies"
    __name__ = 'gnuhealth.radiology.study.link'

    start = StateView(
        'gnuhealth.radiology.study.link.start',
        'health_radiology.study_link_start_view_form', [
            Button("Cancel", 'end', 'tryton-cancel'),
            Button("Link", 'link', 'tryton-ok', default=True),
            ])
    link = StateTransition()

    def default_start(self, fields):
        # Propose what the studies already share.
        defaults = {}
        for name in fields:
            values = {getattr(r, name, None) for r in self.records}
            if len(values) == 1:
                value, = values
                defaults[name] = getattr(value, 'id', value)
        return defaults

    def transition_link(self):
        pool = Pool()
        Study = pool.get('gnuhealth.radiology.study')
        # The write records who linked the studies and when.
        Study.write(list(self.records), self.start.link_values())
        return 'end'


class StudyMatch(Wizard):
    "Match Radiology Studies Again"
    __name__ = 'gnuhealth.radiology.study.match'

    start_state = 'match'
    match = StateTransition()

    def transition_match(self):
        pool = Pool()
        Study = pool.get('gnuhealth.radiology.study')
        context = Transaction().context
        if (context.get('active_model') == Study.__name__
                and context.get('active_ids')):
            domain = ('id', 'in', context['active_ids'])
        else:
            domain = ('link_state', 'in', ['unmatched', 'conflict'])
        Study.match_pending(domain)
        return 'end'


class StudyLinkStartImaging(metaclass=PoolMeta):
    "Link to a GNU Health patient and imaging order (with health_imaging)"
    __name__ = 'gnuhealth.radiology.study.link.start'

    patient = fields.Many2One(
        'gnuhealth.patient', "Patient",
        help="The GNU Health patient the images belong to.")
    imaging_request = imaging_request_field(
        "The imaging test request the studies answer, if any.")

    @fields.depends('patient', 'party')
    def on_change_patient(self):
        if self.patient:
            self.party = self.patient.party

    @fields.depends('imaging_request', 'patient', 'party')
    def on_change_imaging_request(self):
        if self.imaging_request:
            self.patient = self.imaging_request.patient
            self.party = self.patient.party

    def link_values(self):
        values = super().link_values()
        patient = self.patient
        if self.imaging_request:
            patient = self.imaging_request.patient
        if patient:
            values['party'] = patient.party.id
        values['patient'] = patient.id if patient else None
        values['imaging_request'] = (
            self.imaging_request.id if self.imaging_request else None)
        return values
