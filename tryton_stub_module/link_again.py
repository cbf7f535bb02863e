# This file is part of orthanc-gnuhealth.  The COPYRIGHT file at the top level
# of this repository contains the full copyright notices and license terms.
"""Matching waiting studies again when what they may belong to appears

A study that arrived before its party, patient, identifier or imaging
order is linked as soon as that record is created. The rules themselves
are in link.py and link_imaging.py.
"""

from trytond.pool import Pool, PoolMeta

from .link import PARTY_CODES
from .lookup import values_at


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
        return values_at(parties, PARTY_CODES)

    @classmethod
    def _match_radiology_studies(cls, parties):
        "Link the studies that arrived before their party"
        pool = Pool()
        Study = pool.get('gnuhealth.radiology.study')
        codes = cls._radiology_patient_ids(parties)
        if codes:
            Study.match_pending(('dicom_patient_id', 'in', list(codes)))


class GivesPatientId:
    "Gives a party a PatientID: its waiting studies are matched again"
    __slots__ = ()

    @classmethod
    def create(cls, vlist):
        pool = Pool()
        Party = pool.get('party.party')
        records = super().create(vlist)
        parties = {p.id for p in cls._radiology_parties(records) if p}
        Party._match_radiology_studies(Party.browse(sorted(parties)))
        return records

    @classmethod
    def _radiology_parties(cls, records):
        "Return the parties the records give a PatientID to"
        return [r.party for r in records]


class PartyIdentifier(GivesPatientId, metaclass=PoolMeta):
    __name__ = 'party.identifier'


class PartyImaging(metaclass=PoolMeta):
    "PUIDs and alternative IDs are PatientIDs too (with health_imaging)"
    __name__ = 'party.party'

    @classmethod
    def _radiology_patient_ids(cls, parties):
        return super()._radiology_patient_ids(parties) | values_at(
            parties, ['ref', 'alternative_ids.code'])


class AlternativePersonID(GivesPatientId, metaclass=PoolMeta):
    __name__ = 'gnuhealth.person_alternative_identification'


class Patient(GivesPatientId, metaclass=PoolMeta):
    __name__ = 'gnuhealth.patient'


class ImagingTestRequest(metaclass=PoolMeta):
    __name__ = 'gnuhealth.imaging.test.request'

    @classmethod
    def create(cls, vlist):
        pool = Pool()
        Study = pool.get('gnuhealth.radiology.study')
        requests = super().create(vlist)
        codes = set()
        for request in requests:
            codes.update([request.request, request.request_line])
        codes.discard(None)
        domain = ['OR', ('accession', 'in', list(codes))]
        if 'merge_id' in cls._fields:
            domain.append(('study_uid', 'in', list(
                        {r.merge_id for r in requests if r.merge_id})))
        Study.match_pending(domain)
        return requests
