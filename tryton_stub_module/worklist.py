# This file is part of orthanc-gnuhealth.  The COPYRIGHT file at the top level
# of this repository contains the full copyright notices and license terms.
"The imaging orders a modality asks for in its DICOM Modality Worklist"

from trytond.i18n import gettext
from trytond.exceptions import UserError
from trytond.pool import PoolMeta
from trytond.rpc import RPC
from trytond.transaction import without_check_access

# GNU Health's genders that DICOM's PatientSex can say; the others are "O".
_DICOM_SEX = {'m': 'M', 'f': 'F', None: ''}


def _person_name(party):
    "Family and given names, the two first components of a DICOM name"
    if not party:
        return ['', '']
    if party.is_person:
        return [party.lastname or '', party.name or '']
    return [party.name or '', '']


class ImagingTestRequest(metaclass=PoolMeta):
    __name__ = 'gnuhealth.imaging.test.request'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__rpc__.update({
                'worklist_orders': RPC(),
                })

    @classmethod
    def default_merge_id(cls):
        # health_imaging_worklist returns a pydicom UID, which XML-RPC
        # clients (proteus, the Orthanc plugin) cannot receive.
        default = getattr(super(), 'default_merge_id', None)
        if default is not None:
            value = default()
            return str(value) if value is not None else None

    @classmethod
    def worklist_orders(cls, states):
        """Return the orders in `states` still to be performed, oldest first,
        as plain values for the Orthanc plugin's worklist

        The search runs with the caller's access rights, so only an account
        that may read imaging requests (the sync group may) gets them.
        """
        known = {s for s, _ in cls.state.selection}
        if (not isinstance(states, (list, tuple)) or not states
                or not set(states) <= known):
            raise UserError(gettext(
                    'health_radiology.msg_worklist_states',
                    states=states, known=', '.join(sorted(known))))
        domain = [('state', 'in', list(states))]
        if 'worklist_status' in cls._fields:
            domain.append(('worklist_status', 'not in', ['done', 'canceled']))
        requests = cls.search(domain, order=[('date', 'ASC'), ('id', 'ASC')])
        # Browsed again: a record keeps the context it was made in, and the
        # patient's party, the test and the doctor are read on the order's
        # behalf, whatever the caller's rights on those models.
        with without_check_access():
            return [r._worklist_order() for r in cls.browse(requests)]

    def _worklist_order(self):
        party = self.patient.party
        test = self.requested_test
        return {
            'request': self.id,
            'accession': self.request or '',
            'procedure_id': self.request_line or self.request or str(self.id),
            'procedure': test.name or '',
            'test_type': test.test_type.code if test.test_type else '',
            # health_imaging_worklist's per-test station and study UID
            'station_aet': getattr(test, 'aetitle', None) or '',
            'study_uid': getattr(self, 'merge_id', None) or '',
            'date': self.date,
            'urgent': bool(self.urgent),
            'comment': self.comment or '',
            'patient_id': party.ref or '',
            'patient_name': _person_name(party),
            'birth_date': party.dob,
            'sex': _DICOM_SEX.get(party.gender, 'O'),
            'physician_name': _person_name(
                self.doctor.party if self.doctor else None),
            }
