# This file is part of orthanc-gnuhealth.  The COPYRIGHT file at the top level
# of this repository contains the full copyright notices and license terms.
"""Where a study is matched to a GNU Health patient and imaging order

Registered only when health_imaging is activated: the rules of the
accession number, the worklist's StudyInstanceUID and the PUID, the
demographics check, on top of link.py's. What a link does to the order is
in order_results.py.
"""

from trytond.i18n import gettext
from trytond.model import fields
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Eval, If

from .lookup import records_by_value


# GNU Health's genders that DICOM's PatientSex can contradict.
_DICOM_SEX = {'m': 'M', 'f': 'F'}
# Rule 3: a patient's PUID, alternative IDs or party identifiers.
PATIENT_CODES = [
    'party.ref', 'party.alternative_ids.code', 'party.identifiers.code']


def imaging_request_field(help, **kwargs):
    """Return the field of an imaging request of the form's patient (any
    request while no patient is chosen)"""
    return fields.Many2One(
        'gnuhealth.imaging.test.request', "Imaging Request",
        domain=[
            If(Eval('patient'), ('patient', '=', Eval('patient', -1)), ())],
        help=help, **kwargs)


def _patient_name(patient):
    party = patient.party
    if party.ref:
        return '%s (%s)' % (party.rec_name, party.ref)
    return party.rec_name


class Study(metaclass=PoolMeta):
    __name__ = 'gnuhealth.radiology.study'

    # Link fields (_link_fields): LINK_READONLY, as link.py's party.
    patient = fields.Many2One(
        'gnuhealth.patient', "Patient",
        help="The GNU Health patient the images belong to.")
    imaging_request = imaging_request_field(
        "The imaging test request (order) the study answers.")
    imaging_result = fields.Many2One(
        'gnuhealth.imaging.test.result', "Imaging Result", readonly=True,
        help="The imaging test result of the request, where clinicians "
        "find the study next to the report.")

    @classmethod
    def _link_fields(cls):
        return super()._link_fields() | {'patient', 'imaging_request'}

    @classmethod
    def _party_name(cls, party):
        return ' '.join(filter(None, [party.lastname, party.name]))

    def _link_description(self):
        parts = []
        if self.patient:
            parts.append(_patient_name(self.patient))
        elif self.party:
            parts.append(self.party.rec_name)
        if self.imaging_request:
            parts.append(self.imaging_request.request_line
                or self.imaging_request.request or '')
        return ' / '.join(parts) or None

    @classmethod
    def _match_clinical(cls, studies):
        """Return the link values of each study by id

        1. AccessionNumber equals a request's order code (or order line);
        2. StudyInstanceUID equals a request's worklist merge_id;
        3. PatientID equals a patient's PUID or one of the party's
           identifiers.
        Contradicting evidence is a conflict, never a guess. An accession
        from another hospital's issuer is no order code here.
        """
        pool = Pool()
        Request = pool.get('gnuhealth.imaging.test.request')
        Patient = pool.get('gnuhealth.patient')
        accessions = {s.accession for s in studies if s._local_accession()}
        uids = {s.study_uid for s in studies}
        has_merge_id = 'merge_id' in Request._fields
        by_accession = records_by_value(
            Request, accessions, ['request', 'request_line'])
        by_uid = records_by_value(
            Request, uids, ['merge_id']) if has_merge_id else {}
        patients = records_by_value(Patient,
            {s.dicom_patient_id for s in studies if s.dicom_patient_id},
            PATIENT_CODES)
        return {s.id: s._match_imaging(
                by_accession.get(s.accession, [])
                if s._local_accession() else [],
                by_uid.get(s.study_uid, []),
                patients.get(s.dicom_patient_id, []))
            for s in studies}

    def _local_accession(self):
        "Tell whether the accession may be an order code of this hospital"
        return bool(self.accession) and self.server.is_local_accession(
            self.accession_issuer)

    def _match_imaging(self, by_accession, by_uid, patients):
        """Return the link values from the candidates of each rule

        by_accession and by_uid are the requests found by rules 1 and 2,
        patients those whose PUID or identifier is the PatientID (rule 3).
        """
        values = {
            'party': None, 'patient': None, 'imaging_request': None,
            'imaging_result': None,
            }
        requests, problem = self._find_order(by_accession, by_uid)
        if requests and not problem:
            problem = self._check_patient(
                requests[0].patient, patients, by_uid=bool(by_uid))
        elif patients and not problem and len(patients) > 1:
            problem = ('msg_match_ambiguous', {
                    'patient_id': self.dicom_patient_id,
                    'parties': ', '.join(_patient_name(p) for p in patients),
                    })
        elif patients and not problem:
            problem = self._check_demographics(patients[0])
        if problem:
            message, kwargs = problem
            values.update(link_state='conflict', link_note=gettext(
                    'health_radiology.' + message, **kwargs))
        elif requests:
            values.update(self._order_link(requests))
        elif patients:
            patient, = patients
            values.update(patient=patient.id, party=patient.party.id,
                link_state='linked', link_note=gettext(
                    'health_radiology.msg_match_patient',
                    patient_id=self.dicom_patient_id,
                    patient=_patient_name(patient))
                + self._name_note(patient.party))
        else:
            values.update(self._unmatched_values(self))
            if self.accession and not self._local_accession():
                values['link_note'] = ' '.join([gettext(
                            'health_radiology.msg_match_foreign_accession',
                            accession=self.accession,
                            issuer=self.accession_issuer),
                        values['link_note']])
            elif self.accession:
                values['link_note'] = gettext(
                    'health_radiology.msg_match_unknown_accession',
                    accession=self.accession, reason=values['link_note'])
        return values

    def _find_order(self, by_accession, by_uid):
        """Return the imaging requests the study answers, all of one patient

        Or None and the message and values of the conflict found.
        """
        # An order line is exact; an order code is shared by its lines.
        exact = [r for r in by_accession if r.request_line == self.accession]
        requests = exact or by_accession
        if requests and by_uid:
            if not set(requests) & set(by_uid):
                return None, ('msg_match_conflict_uid', {
                        'accession': self.accession,
                        'study_uid': self.study_uid,
                        })
            requests = [r for r in requests if r in by_uid]
        elif by_uid:
            requests = by_uid
        if len(requests) > 1:
            modalities = set((self.modalities or '').split())
            same_type = [r for r in requests
                if r.requested_test.test_type.code in modalities]
            if len(same_type) == 1:
                requests = same_type
        request_patients = {r.patient for r in requests}
        if len(request_patients) > 1:
            return None, ('msg_match_conflict_requests', {
                    'accession': self.accession,
                    'patients': ', '.join(sorted(
                            _patient_name(p) for p in request_patients)),
                    })
        return requests, None

    def _check_patient(self, patient, patients, by_uid):
        """Return the message and values of the conflict when the study may
        not be of the order's patient, else None

        patients are those whose PUID or identifier is the PatientID. A
        PatientID that is another patient's contradicts the order; so does
        one that is nobody's when only the accession found the order, as
        accession numbers are unique only within their issuer. The
        worklist's StudyInstanceUID (by_uid) is unique everywhere.
        """
        if patient not in patients and (
                patients or (self.dicom_patient_id and not by_uid)):
            values = {
                'accession': self.accession or self.study_uid,
                'request_patient': _patient_name(patient),
                'patient_id': self.dicom_patient_id,
                }
            if not patients:
                return ('msg_match_foreign_patient_id', values)
            return ('msg_match_conflict_patient', {**values,
                    'patients': ', '.join(
                        _patient_name(p) for p in patients)})
        return self._check_demographics(patient)

    def _check_demographics(self, patient):
        """Return the message and values of the conflict when the study's
        birth date or sex is not the patient's, else None"""
        party = patient.party
        dicom, gnuhealth = [], []
        dob = self.dicom_patient_birth_date
        if dob and party.dob and dob != party.dob:
            dicom.append(gettext('health_radiology.msg_match_birth_date',
                    value=dob.isoformat()))
            gnuhealth.append(gettext('health_radiology.msg_match_birth_date',
                    value=party.dob.isoformat()))
        # Only DICOM's M and F against GNU Health's m and f can disagree.
        sex = _DICOM_SEX.get(party.gender)
        if self.dicom_patient_sex in _DICOM_SEX.values() and sex and (
                self.dicom_patient_sex != sex):
            dicom.append(gettext('health_radiology.msg_match_sex',
                    value=self.dicom_patient_sex))
            gnuhealth.append(gettext('health_radiology.msg_match_sex',
                    value=sex))
        if dicom:
            return ('msg_match_demographics', {
                    'dicom': ', '.join(dicom),
                    'patient': _patient_name(patient),
                    'gnuhealth': ', '.join(gnuhealth),
                    })

    def _order_link(self, requests):
        "Return the link values to the requests, all of one patient"
        patient = requests[0].patient
        values = {'patient': patient.id, 'party': patient.party.id}
        if len(requests) > 1:
            # The order is certain, not which of its lines.
            values.update(link_state='conflict', link_note=gettext(
                    'health_radiology.msg_match_several_requests',
                    accession=self.accession,
                    patient=_patient_name(patient),
                    requests=', '.join(sorted(
                            r.requested_test.rec_name for r in requests))))
            return values
        request, = requests
        values.update(imaging_request=request.id, link_state='linked',
            link_note=gettext('health_radiology.msg_match_request',
                request=request.request_line or request.request,
                patient=_patient_name(patient))
            + self._name_note(patient.party))
        if self.imaging_result and self.imaging_result.request == request:
            values['imaging_result'] = self.imaging_result.id
        return values
