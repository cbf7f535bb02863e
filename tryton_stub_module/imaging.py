# This file is part of orthanc-gnuhealth.  The COPYRIGHT file at the top level
# of this repository contains the full copyright notices and license terms.
"Links to GNU Health, registered only when health_imaging is activated"

from trytond.model import fields
from trytond.pool import PoolMeta


class Study(metaclass=PoolMeta):
    __name__ = 'gnuhealth.radiology.study'

    patient = fields.Many2One(
        'gnuhealth.patient', "Patient",
        help="The GNU Health patient the images belong to.")
    imaging_request = fields.Many2One(
        'gnuhealth.imaging.test.request', "Imaging Request",
        help="The imaging test request (order) the study answers.")
