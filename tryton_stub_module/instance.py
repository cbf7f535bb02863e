# This file is part of orthanc-gnuhealth.  The COPYRIGHT file at the top level
# of this repository contains the full copyright notices and license terms.
from trytond.model import ModelSQL, ModelView, Unique, fields
from trytond.tools import grouped_slice

from .pacs_resource import PacsResourceMixin, dicom_field
from .snapshot import Snapshot, upsert


class Instance(PacsResourceMixin, ModelSQL, ModelView):
    "Radiology Instance"
    __name__ = 'gnuhealth.radiology.instance'
    _rec_name = 'sop_instance_uid'

    series = fields.Many2One(
        'gnuhealth.radiology.series', "Series", required=True, readonly=True,
        ondelete='CASCADE', help="The series the image belongs to.")
    sop_instance_uid = dicom_field(fields.Char, "SOP Instance UID",
        'SOPInstanceUID', required=True)
    number = dicom_field(fields.Integer, "Number", 'InstanceNumber')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints = [
            ('sop_instance_uid_unique',
                Unique(t, t.series, t.sop_instance_uid),
                'health_radiology.msg_sop_instance_uid_unique'),
            ]
        cls._order = [
            ('series', 'ASC'),
            ('number', 'ASC NULLS LAST'),
            ('id', 'ASC'),
            ]

    @classmethod
    def read_snapshot(cls, reader, values):
        "Return the SOPInstanceUID and the Snapshot of a pushed instance"
        sop_instance_uid = reader.uid(
            values, 'sop_instance_uid', required=True)
        return sop_instance_uid, Snapshot({
                'orthanc_id': reader.uid(values, 'orthanc_id'),
                'number': reader.integer(values, 'number'),
                'pacs_state': 'available',
                }, {})

    @classmethod
    def sync_from_pacs(cls, snapshots):
        """Make the instances of each series match its snapshot

        snapshots maps a series id to {SOPInstanceUID: Snapshot}, the full
        content of the series in the PACS.
        Return the ids of the series whose content changed.
        """
        # Thousands per push, every value checked by read_snapshot: one
        # INSERT per slice rather than one validated record each.
        _, changed, missing = upsert(
            cls, 'series', 'sop_instance_uid', snapshots, (
                [('series', 'in', list(series_ids))]
                for series_ids in grouped_slice(list(snapshots))),
            bulk=True)
        cls.mark_pacs_deleted(cls.browse(list(missing.values())))
        return {series_id for series_id, _ in changed | set(missing)}
