# This file is part of orthanc-gnuhealth.  The COPYRIGHT file at the top level
# of this repository contains the full copyright notices and license terms.
from trytond.model import ModelSQL, ModelView, Unique, fields
from trytond.pool import Pool
from trytond.tools import grouped_slice

from .pacs_resource import (
    PacsResourceMixin, count_in_pacs, dicom_field, search_any)
from .server import viewer_link
from .snapshot import Snapshot, upsert


class Series(PacsResourceMixin, ModelSQL, ModelView):
    "Radiology Series"
    __name__ = 'gnuhealth.radiology.series'
    _rec_name = 'series_uid'
    _pacs_children = ('gnuhealth.radiology.instance', 'series')

    study = fields.Many2One(
        'gnuhealth.radiology.study', "Study", required=True, readonly=True,
        ondelete='CASCADE', help="The study the series belongs to.")
    series_uid = dicom_field(fields.Char, "Series Instance UID",
        'SeriesInstanceUID', required=True)
    modality = dicom_field(fields.Char, "Modality", 'Modality',
        ', such as "CT"')
    number = dicom_field(fields.Integer, "Number", 'SeriesNumber')
    description = dicom_field(fields.Char, "Description", 'SeriesDescription')
    body_part = dicom_field(fields.Char, "Body Part", 'BodyPartExamined')
    instances = fields.One2Many(
        'gnuhealth.radiology.instance', 'series', "Instances", readonly=True,
        help="The images of the series.")
    instance_count = fields.Function(fields.Integer(
            "Instances",
            help="The number of images of the series still in the PACS."),
        'get_instance_count')
    ohif_url = viewer_link("OHIF Viewer",
        "the series' study", "the OHIF viewer", 'get_ohif_url')
    webviewer_url = viewer_link("Orthanc Web Viewer",
        "the series", "the Orthanc Web Viewer", 'get_webviewer_url')
    preview_url = fields.Function(fields.Char(
            "Preview",
            help="Orthanc's picture of the first image of the series."),
        'get_preview_url')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints = [
            ('series_uid_unique', Unique(t, t.study, t.series_uid),
                'health_radiology.msg_series_uid_unique'),
            ]
        cls._order = [
            ('study', 'ASC'),
            ('number', 'ASC NULLS LAST'),
            ('id', 'ASC'),
            ]

    def get_rec_name(self, name):
        parts = [
            self.number is not None and str(self.number),
            self.modality,
            self.description,
            ]
        return ' '.join(filter(None, parts)) or self.series_uid

    @classmethod
    def search_rec_name(cls, name, clause):
        return search_any(clause, ['series_uid', 'description'])

    @classmethod
    def get_instance_count(cls, series, name):
        Instance = Pool().get('gnuhealth.radiology.instance')
        instance = Instance.__table__()
        counts = count_in_pacs(series, instance, instance.series, instance.id,
            where=instance.pacs_state == 'available')
        return {i: n for i, (n,) in counts.items()}

    def get_ohif_url(self, name):
        # OHIF opens whole studies; its study browser lists this series.
        return self.study.ohif_url if self.study else None

    def get_webviewer_url(self, name):
        if self.pacs_state == 'deleted':
            return None
        return self.study.server.viewer_url(
            'webviewer', series_id=self.orthanc_id)

    def get_preview_url(self, name):
        if self.pacs_state == 'deleted':
            return None
        Instance = Pool().get('gnuhealth.radiology.instance')
        instances = Instance.search([
                ('series', '=', self.id),
                ('pacs_state', '!=', 'deleted'),
                ], limit=1)
        if instances:
            return self.study.server.preview_url(instances[0].orthanc_id)

    @classmethod
    def read_snapshot(cls, reader, values):
        "Return the SeriesInstanceUID and the Snapshot of a pushed series"
        pool = Pool()
        Instance = pool.get('gnuhealth.radiology.instance')
        series_uid = reader.uid(values, 'series_uid', required=True)
        series_values = {
            'orthanc_id': reader.uid(values, 'orthanc_id'),
            'modality': reader.text(values, 'modality'),
            'number': reader.integer(values, 'number'),
            'description': reader.text(values, 'description'),
            'body_part': reader.text(values, 'body_part'),
            'pacs_state': 'available',
            }
        instances = dict(
            Instance.read_snapshot(reader, v)
            for v in reader.items(values, 'instances'))
        return series_uid, Snapshot(series_values, instances)

    @classmethod
    def sync_from_pacs(cls, snapshots):
        """Make the series of each study match its snapshot

        snapshots maps a study id to {SeriesInstanceUID: Snapshot}, the full
        content of the study in the PACS.
        Return the ids of the studies whose content changed.
        """
        pool = Pool()
        Instance = pool.get('gnuhealth.radiology.instance')
        # Every value checked by read_snapshot: one INSERT per slice.
        ids, changed, missing = upsert(
            cls, 'study', 'series_uid', snapshots, (
                [('study', 'in', list(study_ids))]
                for study_ids in grouped_slice(list(snapshots))),
            bulk=True)
        cls.mark_pacs_deleted(cls.browse(list(missing.values())))
        changed_studies = {study_id for study_id, _ in changed | set(missing)}
        study_of = {
            series_id: study_id for (study_id, _), series_id in ids.items()}
        changed_series = Instance.sync_from_pacs({
                ids[(study_id, uid)]: snapshot.children
                for study_id, children in snapshots.items()
                for uid, snapshot in children.items()})
        changed_studies |= {study_of[s] for s in changed_series}
        return changed_studies
