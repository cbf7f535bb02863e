# This file is part of orthanc-gnuhealth.  The COPYRIGHT file at the top level
# of this repository contains the full copyright notices and license terms.
"health_radiology: Orthanc PACS studies pushed into Tryton / GNU Health"

from trytond.pool import Pool

from . import (
    audit, imaging, instance, link, link_again, link_by_hand, link_imaging,
    link_wizard, order_results, series, server, study, upload, worklist)

__all__ = ['register']


def register():
    Pool.register(
        server.Server,
        study.Study,
        link.Study,
        link_by_hand.Study,
        audit.Study,
        link_by_hand.StudyLinkLog,
        series.Series,
        instance.Instance,
        link_wizard.StudyLinkStart,
        link_again.Party,
        link_again.PartyIdentifier,
        module='health_radiology', type_='model')
    Pool.register(
        link_wizard.StudyLink,
        link_wizard.StudyMatch,
        module='health_radiology', type_='wizard')
    # Links to GNU Health's patients and imaging orders exist only when
    # health_imaging is activated in the same database.
    Pool.register(
        link_imaging.Study,
        link_by_hand.StudyImaging,
        order_results.Study,
        link_wizard.StudyLinkStartImaging,
        link_again.PartyImaging,
        link_again.AlternativePersonID,
        link_again.Patient,
        link_again.ImagingTestRequest,
        imaging.Patient,
        imaging.ImagingTestRequest,
        imaging.ImagingTestResult,
        worklist.ImagingTestRequest,
        upload.Upload,
        module='health_radiology', type_='model', depends=['health_imaging'])
