# This file is part of orthanc-gnuhealth.  The COPYRIGHT file at the top level
# of this repository contains the full copyright notices and license terms.
"""Where clinicians find the studies in GNU Health: on the patient, the
imaging request and the imaging result (with health_imaging)

They show only linked studies: one in conflict may keep the link to a
patient it is likely not of, until radiology staff decide.
"""

from trytond.model import fields
from trytond.pool import PoolMeta

LINKED = [('link_state', '=', 'linked')]


def linked_studies(field, help):
    "Return the list of the linked studies whose field is the record"
    return fields.One2Many('gnuhealth.radiology.study', field,
        "Imaging Studies", readonly=True, filter=LINKED, help=help)


class Patient(metaclass=PoolMeta):
    __name__ = 'gnuhealth.patient'

    radiology_studies = linked_studies('patient',
        "The DICOM studies of the patient, with their viewer links.")


class ImagingTestRequest(metaclass=PoolMeta):
    __name__ = 'gnuhealth.imaging.test.request'

    radiology_studies = linked_studies('imaging_request',
        "The DICOM studies made for the request.")


class ImagingTestResult(metaclass=PoolMeta):
    __name__ = 'gnuhealth.imaging.test.result'

    radiology_studies = linked_studies('imaging_result',
        "The DICOM studies of the result.")
