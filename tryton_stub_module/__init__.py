# This file is part of orthanc-gnuhealth.  The COPYRIGHT file at the top level
# of this repository contains the full copyright notices and license terms.
"health_radiology: Orthanc PACS studies pushed into Tryton / GNU Health"

from trytond.pool import Pool

from . import imaging, instance, link, series, server, study, worklist

__all__ = ['register']


def register():
    Pool.register(
        server.Server,
        study.Study,
        study.StudyLinkLog,
        series.Series,
        instance.Instance,
        link.StudyLinkStart,
        link.Party,
        link.PartyIdentifier,
        module='health_radiology', type_='model')
    Pool.register(
        link.StudyLink,
        link.StudyMatch,
        module='health_radiology', type_='wizard')
    # Links to GNU Health's patients and imaging orders exist only when
    # health_imaging is activated in the same database.
    Pool.register(
        imaging.Study,
        imaging.StudyLinkStart,
        imaging.Party,
        imaging.AlternativePersonID,
        imaging.Patient,
        imaging.ImagingTestRequest,
        imaging.ImagingTestResult,
        worklist.ImagingTestRequest,
        module='health_radiology', type_='model', depends=['health_imaging'])
