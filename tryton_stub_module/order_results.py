# This file is part of orthanc-gnuhealth.  The COPYRIGHT file at the top level
# of this repository contains the full copyright notices and license terms.
"""What a link does to an imaging order (with health_imaging): the request
is done, with the imaging test result on which clinicians find the study

The links themselves are decided in link_imaging.py and link_by_hand.py.
"""

import datetime
from collections import defaultdict

from trytond.pool import Pool, PoolMeta
from trytond.tools import grouped_slice
from trytond.transaction import without_check_access


class Study(metaclass=PoolMeta):
    __name__ = 'gnuhealth.radiology.study'

    @classmethod
    def _clinical_linked(cls, studies):
        """Move the linked requests forward and put the studies on results

        As GNU Health's "Generate Results" does: the request becomes done
        with an imaging test result, reused when it exists; with the
        worklist, the request leaves the worklist.
        """
        pool = Pool()
        Request = pool.get('gnuhealth.imaging.test.request')
        Result = pool.get('gnuhealth.imaging.test.result')
        super()._clinical_linked(studies)
        studies = [s for s in studies if s.imaging_request]
        if not studies:
            return
        with without_check_access():
            requests = Request.browse(
                sorted({s.imaging_request.id for s in studies}))
            results = {}
            for sub_requests in grouped_slice(requests):
                for result in Result.search([
                            ('request', 'in', [r.id for r in sub_requests]),
                            ], order=[('id', 'ASC')]):
                    results.setdefault(result.request.id, result)
            missing = [r for r in requests if r.id not in results]
            if missing:
                now = datetime.datetime.now()
                created = Result.create([{
                            'patient': r.patient.id,
                            'date': now,
                            'request_date': r.date,
                            'requested_test': r.requested_test.id,
                            'request': r.id,
                            'order': r.request,
                            'doctor': r.doctor.id,
                            } for r in missing])
                results.update(zip((r.id for r in missing), created))
            Request.requested([r for r in requests if r.state == 'draft'])
            requests = Request.browse([r.id for r in requests])
            Request.done([r for r in requests if r.state == 'requested'])
            if 'worklist_status' in Request._fields:
                todo = [r for r in requests if r.worklist_status != 'done']
                if todo:
                    Request.write(todo, {'worklist_status': 'done'})
            to_write = defaultdict(list)
            for study in studies:
                result = results[study.imaging_request.id]
                if study.imaging_result != result:
                    to_write[result.id].append(study)
            args = []
            for result_id, records in to_write.items():
                args.extend((records, {'imaging_result': result_id}))
            if args:
                cls.write(*args)
