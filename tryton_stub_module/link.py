# This file is part of orthanc-gnuhealth.  The COPYRIGHT file at the top level
# of this repository contains the full copyright notices and license terms.
"Linking studies by hand, matching them again, and late arrivals"

from trytond.model import ModelView, fields
from trytond.pool import Pool, PoolMeta
from trytond.transaction import Transaction
from trytond.wizard import Button, StateTransition, StateView, Wizard


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


class Party(metaclass=PoolMeta):
    __name__ = 'party.party'

    @classmethod
    def create(cls, vlist):
        parties = super().create(vlist)
        cls._match_radiology_studies(parties)
        return parties

    @classmethod
    def _radiology_patient_ids(cls, parties):
        "Return the codes that a DICOM PatientID may carry for parties"
        codes = set()
        for party in parties:
            codes.add(party.code)
            codes.update(i.code for i in party.identifiers)
        codes.discard(None)
        return codes

    @classmethod
    def _match_radiology_studies(cls, parties):
        "Link the studies that arrived before their party"
        pool = Pool()
        Study = pool.get('gnuhealth.radiology.study')
        codes = cls._radiology_patient_ids(parties)
        if codes:
            Study.match_pending(('dicom_patient_id', 'in', list(codes)))


class PartyIdentifier(metaclass=PoolMeta):
    __name__ = 'party.identifier'

    @classmethod
    def create(cls, vlist):
        pool = Pool()
        Party = pool.get('party.party')
        identifiers = super().create(vlist)
        Party._match_radiology_studies(
            Party.browse(list({i.party.id for i in identifiers})))
        return identifiers
