# This file is part of orthanc-gnuhealth.  The COPYRIGHT file at the top level
# of this repository contains the full copyright notices and license terms.
"What GNU Health holds of each study, for the Orthanc plugin's audit"

from trytond.pool import Pool, PoolMeta
from trytond.rpc import RPC
from trytond.tools import grouped_slice

from .pacs_resource import count_in_pacs


class Study(metaclass=PoolMeta):
    __name__ = 'gnuhealth.radiology.study'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        # Read-only, with the caller's access rights: the sync group reads
        # studies.
        cls.__rpc__.update({
                'audit_summary': RPC(),
                })

    @classmethod
    def audit_summary(cls, label, orthanc_ids):
        """Return what GNU Health holds of the studies of server label

        By Orthanc ID, for the plugin's audit to compare with Orthanc;
        the studies GNU Health does not have are absent.
        """
        pool = Pool()
        Series = pool.get('gnuhealth.radiology.series')
        Instance = pool.get('gnuhealth.radiology.instance')
        studies = []
        for sub_ids in grouped_slice(sorted(set(orthanc_ids))):
            studies.extend(cls.search([
                        ('server.label', '=', label),
                        ('orthanc_id', 'in', list(sub_ids)),
                        ], order=[]))
        series = Series.__table__()
        instance = Instance.__table__()
        counts = count_in_pacs(studies,
            series.join(instance, 'LEFT',
                condition=(instance.series == series.id)
                & (instance.pacs_state == 'available')),
            series.study, series.id, instance.id,
            where=series.pacs_state == 'available')
        return {s.orthanc_id: {
                'series': counts[s.id][0],
                'instances': counts[s.id][1],
                'last_update': s.pacs_last_update,
                'reception': s.reception,
                'pacs_state': s.pacs_state,
                } for s in studies}
