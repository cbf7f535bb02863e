# This file is part of orthanc-gnuhealth.  The COPYRIGHT file at the top level
# of this repository contains the full copyright notices and license terms.
"""Where a study is matched to the person it belongs to

The rules of plain Tryton (the PatientID is a party's code or identifier),
StudyInstanceUID collisions, links kept against new evidence. GNU Health's
rules (patients, imaging orders) extend them in link_imaging.py; a link set
by hand and its history are in link_by_hand.py, the wizards in
link_wizard.py, and matching again when a party or order appears in
link_again.py.
"""

import re
import unicodedata
from collections import defaultdict

from trytond.i18n import gettext
from trytond.model import Index, fields
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Eval, Id
from trytond.tools import grouped_slice
from trytond.transaction import Transaction, without_check_access

from .lookup import records_by_value

LINK_STATES = [
    ('unmatched', "Unmatched"),
    ('linked', "Linked"),
    ('conflict', "Conflict"),
    ]
# Plain Tryton: the fields of a party a DICOM PatientID may equal.
PARTY_CODES = ['code', 'identifiers.code']

# Only radiology staff and administrators may change a study's links; for
# everyone else (clinicians) the form shows them read-only rather than
# failing when saved.
_GROUPS = Eval('context', {}).get('groups', [])
LINK_READONLY = ~(Id('health_radiology', 'group_radiology_staff').in_(_GROUPS)
    | Id('health_radiology', 'group_radiology_admin').in_(_GROUPS))


def name_words(name):
    """Return the words of a person's name, sorted, without case or accents

    A DICOM name 'Family^Given^Middle' compares equal to "Given Family";
    only its first (alphabetic) group counts, before any '='.
    """
    name = unicodedata.normalize('NFKD', name.split('=')[0])
    name = ''.join(c for c in name if not unicodedata.combining(c))
    return sorted(w for w in re.split(r'[\s^,]+', name.casefold()) if w)


class Study(metaclass=PoolMeta):
    __name__ = 'gnuhealth.radiology.study'

    # The fields of _link_fields are LINK_READONLY (__setup__).
    party = fields.Many2One(
        'party.party', "Party", help="The person the images belong to.")
    link_state = fields.Selection(
        LINK_STATES, "Link State", readonly=True,
        help="Whether the study is linked to the person (and order) it "
        "belongs to, found nothing to link to, or found contradicting "
        "evidence that a person must resolve.")
    link_note = fields.Char(
        "Link Note", readonly=True,
        help="Why the study is linked, unmatched or in conflict.")
    # Set by link_by_hand.py.
    linked_by = fields.Many2One(
        'res.user', "Linked By", readonly=True, ondelete='RESTRICT',
        help="The person who last linked the study by hand. "
        "Automatic matching never changes a study linked by hand.")
    linked_at = fields.DateTime(
        "Linked At", readonly=True,
        help="When the study was last linked by hand.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_indexes.add(Index(t, (t.link_state, Index.Equality())))
        for name in cls._link_fields():
            getattr(cls, name).states['readonly'] = LINK_READONLY

    @classmethod
    def default_link_state(cls):
        return 'unmatched'

    @classmethod
    def _link_fields(cls):
        "Return the names of the fields that link a study to its records"
        return {'party'}

    def _link_description(self):
        "Return a text describing what the study is linked to"
        return self.party.rec_name if self.party else None

    @classmethod
    def _link_clinical(cls, studies):
        """Link the pushed studies to the clinical records they belong to

        The other studies of their server with the same StudyInstanceUID
        are looked at too: a collision concerns them all. Studies linked by
        hand are left as they are, unless a collision appeared since.
        Matching is done for the whole list at once, with a handful of
        queries.
        Return the ids of the studies looked at.
        """
        studies = cls._with_uid_siblings(studies)
        collisions = cls._uid_collisions(studies)
        pending = [
            s for s in studies if not s.linked_by or s.id in collisions]
        if not pending:
            return [s.id for s in studies]
        transaction = Transaction()
        with without_check_access(), \
                transaction.set_context(_radiology_matching=True):
            matches = cls._match_clinical(pending)
            to_write = defaultdict(list)
            for study in pending:
                diff = {}
                values = study._decide_link(
                    matches[study.id], collisions.get(study.id))
                for name, value in values.items():
                    current = getattr(study, name)
                    current = getattr(current, 'id', current)
                    if current != value:
                        diff[name] = value
                if diff:
                    to_write[tuple(sorted(diff.items()))].append(study)
            args = []
            for diff, records in to_write.items():
                args.extend((records, dict(diff)))
            if args:
                cls.write(*args)
            pending = cls.browse([s.id for s in pending])
            cls._clinical_linked(
                [s for s in pending if s.link_state == 'linked'])
        return [s.id for s in studies]

    def _decide_link(self, found, collision):
        """Return the link values of the study from what matching found

        collision is the note of a StudyInstanceUID collision, if any.
        An automatic link never moves to someone else: evidence against it
        makes the study a conflict that keeps the link until a person
        decides.
        """
        held = {
            n: getattr(getattr(self, n), 'id', None)
            for n in self._link_fields()}
        if not any(held.values()):
            held = None
        if collision:
            # Neither study of a collision is linked automatically.
            values = held or {
                n: None for n in found if n not in {'link_state', 'link_note'}}
            return {**values, 'link_state': 'conflict', 'link_note': collision}
        if not held:
            return found
        if found['link_state'] == 'unmatched':
            # No evidence against the link: the study stays as it is.
            return {}
        if found['link_state'] == 'linked' and all(
                v is None or found.get(n) == v for n, v in held.items()):
            # The same person; matching may add the order.
            return found
        return {
            'link_state': 'conflict',
            'link_note': gettext('health_radiology.msg_match_contradicts_link',
                evidence=found['link_note'], link=self._link_description()),
            }

    @classmethod
    def _with_uid_siblings(cls, studies):
        "Return studies and the others of their server with their UIDs"
        uids = defaultdict(set)
        for study in studies:
            uids[study.server.id].add(study.study_uid)
        known = {s.id for s in studies}
        siblings = []
        for server_id, server_uids in uids.items():
            for sub_uids in grouped_slice(sorted(server_uids)):
                siblings.extend(cls.search([
                            ('server', '=', server_id),
                            ('study_uid', 'in', list(sub_uids)),
                            ('id', 'not in', list(known)),
                            ], order=[('id', 'ASC')]))
        return list(studies) + siblings

    @classmethod
    def _uid_collisions(cls, studies):
        """Return the note of each study whose StudyInstanceUID its server
        holds under several PatientIDs, by id

        studies must hold every study of their servers with their UIDs.
        A person's link settles the collision with the studies that existed
        when they linked: only a study that arrived later reopens it.
        """
        groups = defaultdict(list)
        for study in studies:
            groups[(study.server.id, study.study_uid)].append(study)
        notes = {}
        for group in groups.values():
            patient_ids = sorted({s.dicom_patient_id or '""' for s in group})
            if len(patient_ids) < 2:
                continue
            note = gettext('health_radiology.msg_match_uid_collision',
                patient_ids=' and '.join(
                    [', '.join(patient_ids[:-1]), patient_ids[-1]]))
            for study in group:
                # linked_at is stored to the second.
                if study.linked_by and not any(
                        o.create_date.replace(microsecond=0) > study.linked_at
                        for o in group if o != study):
                    continue
                notes[study.id] = note
        return notes

    @classmethod
    def _match_clinical(cls, studies):
        """Return the link values of each study by id

        Plain Tryton: the DICOM PatientID is the code or an identifier of a
        party.
        """
        Party = Pool().get('party.party')
        parties = records_by_value(Party,
            {s.dicom_patient_id for s in studies if s.dicom_patient_id},
            PARTY_CODES)
        matches = {}
        for study in studies:
            candidates = parties.get(study.dicom_patient_id, [])
            values = {'party': None}
            if len(candidates) == 1:
                party, = candidates
                values.update(party=party.id, link_state='linked',
                    link_note=gettext('health_radiology.msg_match_party',
                        patient_id=study.dicom_patient_id,
                        party=party.rec_name) + study._name_note(party))
            elif candidates:
                values.update(link_state='conflict',
                    link_note=gettext('health_radiology.msg_match_ambiguous',
                        patient_id=study.dicom_patient_id,
                        parties=', '.join(p.rec_name for p in candidates)))
            else:
                values.update(cls._unmatched_values(study))
            matches[study.id] = values
        return matches

    def _name_note(self, party):
        """Return a note, with a leading space, when the DICOM PatientName
        is not the party's name, else an empty string

        Only a note: name formats vary too much to be evidence.
        """
        if not self.dicom_patient_name:
            return ''
        name = self._party_name(party)
        if name_words(self.dicom_patient_name) == name_words(name):
            return ''
        return ' ' + gettext('health_radiology.msg_match_name_differs',
            dicom_name=self.dicom_patient_name, name=name)

    @classmethod
    def _party_name(cls, party):
        "Return the full name of party to compare with the PatientName"
        return party.name or ''

    @classmethod
    def _unmatched_values(cls, study):
        if study.dicom_patient_id:
            note = gettext('health_radiology.msg_match_unknown_patient_id',
                patient_id=study.dicom_patient_id)
        else:
            note = gettext('health_radiology.msg_match_no_patient_id')
        return {'link_state': 'unmatched', 'link_note': note}

    @classmethod
    def _clinical_linked(cls, studies):
        "Move forward the clinical records of the studies just linked"

    @classmethod
    def match_pending(cls, domain):
        """Match again the studies not linked by hand within domain

        Called when a record that a study may belong to appears, and by the
        "match again" wizard; safe to run on every unmatched study.
        """
        with without_check_access():
            studies = cls.search(
                [('linked_by', '=', None), domain], order=[('id', 'ASC')])
            for sub_studies in grouped_slice(studies):
                cls._link_clinical(list(sub_studies))
        return studies

