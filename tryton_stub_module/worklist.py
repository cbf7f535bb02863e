# This file is part of orthanc-gnuhealth.  The COPYRIGHT file at the top level
# of this repository contains the full copyright notices and license terms.
"The imaging orders a modality asks for in its DICOM Modality Worklist"

from trytond.i18n import gettext
from trytond.exceptions import UserError
from trytond.pool import Pool, PoolMeta
from trytond.rpc import RPC

# GNU Health's genders that DICOM's PatientSex can say; the others are "O".
_DICOM_SEX = {'m': 'M', 'f': 'F', None: ''}
# The party fields of a DICOM person name.
_NAME_FIELDS = ['is_person', 'lastname', 'name']


def _person_name(party):
    "Family and given names, the two first components of a DICOM name"
    if not party:
        return ['', '']
    if party['is_person']:
        return [party['lastname'] or '', party['name'] or '']
    return [party['name'] or '', '']


def _related(row, *path):
    "The read values at the end of a path of Many2One fields, or None"
    for name in path:
        row = row and row[name + '.']
    return row


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

        Everything is read with `search_read`, so with the caller's access
        rights like any other read: only an account that may read the
        imaging requests, their tests and test types, their patients,
        parties and doctors gets the worklist (the radiology sync group
        may); any other gets an access error. (Reading through the records'
        attributes would check nothing: Tryton reads related records
        without access checks.)
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
        rows = cls.search_read(
            domain, order=[('date', 'ASC'), ('id', 'ASC')],
            fields_names=cls._worklist_fields())
        return [cls._worklist_order(r) for r in rows]

    @classmethod
    def _worklist_fields(cls):
        Test = Pool().get('gnuhealth.imaging.test')
        fields = [
            'request', 'request_line', 'date', 'urgent', 'comment',
            'requested_test.name', 'requested_test.test_type.code',
            'patient.party.ref', 'patient.party.dob', 'patient.party.gender',
            ]
        fields += ['patient.party.' + f for f in _NAME_FIELDS]
        fields += ['doctor.party.' + f for f in _NAME_FIELDS]
        # health_imaging_worklist's study UID and per-test station
        if 'merge_id' in cls._fields:
            fields.append('merge_id')
        if 'aetitle' in Test._fields:
            fields.append('requested_test.aetitle')
        return fields

    @classmethod
    def _worklist_order(cls, row):
        party = _related(row, 'patient', 'party')
        test = _related(row, 'requested_test')
        test_type = _related(test, 'test_type')
        return {
            'request': row['id'],
            'accession': row['request'] or '',
            'procedure_id': row['request_line'] or row['request'] or str(row['id']),
            'procedure': test['name'] or '',
            'test_type': test_type['code'] if test_type else '',
            'station_aet': test.get('aetitle') or '',
            'study_uid': row.get('merge_id') or '',
            'date': row['date'],
            'urgent': bool(row['urgent']),
            'comment': row['comment'] or '',
            'patient_id': party['ref'] or '',
            'patient_name': _person_name(party),
            'birth_date': party['dob'],
            'sex': _DICOM_SEX.get(party['gender'], 'O'),
            'physician_name': _person_name(_related(row, 'doctor', 'party')),
            }
