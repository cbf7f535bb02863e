# This file is part of orthanc-gnuhealth.  The COPYRIGHT file at the top level
# of this repository contains the full copyright notices and license terms.
"The study record as the PACS holds it, and the push that stores it"

import datetime

from sql.aggregate import Count

from trytond.i18n import gettext
from trytond.model import Index, ModelSQL, ModelView, Unique, fields
from trytond.pool import Pool
from trytond.rpc import RPC
from trytond.tools import grouped_slice, reduce_ids
from trytond.transaction import Transaction

from .pacs_resource import PacsResourceMixin
from .snapshot import Snapshot, SnapshotReader, upsert

# The model and the path to its server of each level of the deleted list.
DELETED_LEVELS = {
    'study': ('gnuhealth.radiology.study', 'server'),
    'series': ('gnuhealth.radiology.series', 'study.server'),
    'instance': ('gnuhealth.radiology.instance', 'series.study.server'),
    }


class Study(PacsResourceMixin, ModelSQL, ModelView):
    "Radiology Study"
    __name__ = 'gnuhealth.radiology.study'
    _rec_name = 'study_uid'
    _pacs_children = ('gnuhealth.radiology.series', 'study')

    server = fields.Many2One(
        'gnuhealth.radiology.server', "Server", required=True,
        readonly=True, ondelete='RESTRICT',
        help="The PACS server that holds the study.")
    study_uid = fields.Char(
        "Study Instance UID", required=True, readonly=True,
        help="The DICOM StudyInstanceUID.")
    accession = fields.Char(
        "Accession Number", readonly=True,
        help="The DICOM AccessionNumber, usually the order code.")
    dicom_patient_id = fields.Char(
        "DICOM Patient ID", readonly=True,
        help="The DICOM PatientID as the modality recorded it.")
    dicom_patient_name = fields.Char(
        "DICOM Patient Name", readonly=True,
        help="The DICOM PatientName as the modality recorded it.")
    study_date = fields.Date(
        "Study Date", readonly=True, help="The DICOM StudyDate.")
    study_time = fields.Time(
        "Study Time", readonly=True, help="The DICOM StudyTime.")
    description = fields.Char(
        "Description", readonly=True, help="The DICOM StudyDescription.")
    modalities = fields.Char(
        "Modalities", readonly=True,
        help="The modalities of the study's series, such as \"CT MR\".")
    referring_physician = fields.Char(
        "Referring Physician", readonly=True,
        help="The DICOM ReferringPhysicianName.")
    institution = fields.Char(
        "Institution", readonly=True, help="The DICOM InstitutionName.")
    series = fields.One2Many(
        'gnuhealth.radiology.series', 'study', "Series", readonly=True,
        help="The series of the study.")
    instance_count = fields.Function(fields.Integer(
            "Instances",
            help="The number of images of the study still in the PACS."),
        'get_instance_count')
    reception = fields.Selection([
            ('receiving', "Receiving"),
            ('complete', "Complete"),
            ], "Reception", readonly=True,
        help="Receiving until Orthanc declares the study stable.")
    last_sync = fields.DateTime(
        "Last Synchronization", readonly=True,
        help="When a push from the PACS last changed the study.")
    ohif_url = fields.Function(fields.Char(
            "OHIF Viewer", help="Open the study in the OHIF viewer."),
        'get_viewer_url')
    stone_url = fields.Function(fields.Char(
            "Stone Viewer", help="Open the study in the Stone Web Viewer."),
        'get_viewer_url')
    explorer_url = fields.Function(fields.Char(
            "Orthanc Explorer", help="Open the study in Orthanc Explorer."),
        'get_viewer_url')
    oe2_url = fields.Function(fields.Char(
            "Orthanc Explorer 2", help="Open the study in Orthanc Explorer 2."),
        'get_viewer_url')
    webviewer_url = fields.Function(fields.Char(
            "Orthanc Web Viewer",
            help="Open the study's first series in the Orthanc Web Viewer."),
        'get_webviewer_url')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints = [
            ('study_uid_unique', Unique(t, t.server, t.study_uid),
                'health_radiology.msg_study_uid_unique'),
            ]
        cls._sql_indexes.update({
                Index(t, (t.accession, Index.Equality())),
                Index(t, (t.dicom_patient_id, Index.Equality())),
                })
        cls._order = [
            ('study_date', 'DESC NULLS FIRST'),
            ('study_time', 'DESC NULLS FIRST'),
            ('id', 'DESC'),
            ]
        cls.__rpc__.update({
                'push_from_pacs': RPC(readonly=False),
                })

    @classmethod
    def default_reception(cls):
        return 'receiving'

    def get_rec_name(self, name):
        parts = [
            self.modalities,
            self.study_date and self.study_date.isoformat(),
            self.description,
            ]
        rec_name = ' '.join(filter(None, parts)) or self.study_uid
        if self.accession:
            rec_name += ' (%s)' % self.accession
        return rec_name

    @classmethod
    def search_rec_name(cls, name, clause):
        _, operator, operand, *extra = clause
        if operator.startswith('!') or operator.startswith('not '):
            bool_op = 'AND'
        else:
            bool_op = 'OR'
        return [bool_op] + [
            (field, operator, operand, *extra) for field in [
                'study_uid', 'accession', 'description',
                'dicom_patient_id', 'dicom_patient_name']]

    @classmethod
    def get_instance_count(cls, studies, name):
        pool = Pool()
        Series = pool.get('gnuhealth.radiology.series')
        Instance = pool.get('gnuhealth.radiology.instance')
        series = Series.__table__()
        instance = Instance.__table__()
        cursor = Transaction().connection.cursor()
        counts = dict.fromkeys(map(int, studies), 0)
        for sub_ids in grouped_slice(counts):
            cursor.execute(*series.join(
                    instance, condition=instance.series == series.id
                    ).select(
                    series.study, Count(instance.id),
                    where=reduce_ids(series.study, sub_ids)
                    & (instance.pacs_state == 'available'),
                    group_by=series.study))
            counts.update(cursor)
        return counts

    def get_viewer_url(self, name):
        if self.pacs_state == 'deleted':
            return None
        return self.server.viewer_url(
            name[:-len('_url')],
            study_uid=self.study_uid, study_id=self.orthanc_id)

    def get_webviewer_url(self, name):
        "The Orthanc Web Viewer opens one series: the first one in the PACS"
        for series in self.series:
            if series.pacs_state != 'deleted':
                return series.webviewer_url

    @classmethod
    def push_from_pacs(cls, batch):
        """Store a batch of study snapshots pushed by the Orthanc plugin

        Idempotent: pushing the same batch again changes nothing.
        """
        pool = Pool()
        Server = pool.get('gnuhealth.radiology.server')
        reader = SnapshotReader(gettext('health_radiology.msg_subject_batch'))
        batch = reader.mapping(batch, 'batch')
        server = Server.from_pacs(batch.get('server'))
        snapshots = {}
        for values in reader.items(batch, 'studies'):
            study_uid, snapshot = cls._read_snapshot(values)
            snapshots[study_uid] = snapshot
        deleted = cls._read_deleted(reader, batch)
        studies = cls._sync_snapshots(server, snapshots)
        # Deletions come after the snapshots as Orthanc logged them later.
        cls._apply_deleted(server, deleted)
        cls._link_clinical(studies)
        return {'studies': {s.study_uid: s.id for s in studies}}

    @classmethod
    def _read_snapshot(cls, values):
        "Return the StudyInstanceUID and the Snapshot of a pushed study"
        pool = Pool()
        Series = pool.get('gnuhealth.radiology.series')
        reader = SnapshotReader.for_study(values)
        study_uid = reader.uid(values, 'study_uid', required=True)
        study_values = {
            'orthanc_id': reader.uid(values, 'orthanc_id'),
            'accession': reader.text(values, 'accession'),
            'dicom_patient_id': reader.text(values, 'dicom_patient_id'),
            'dicom_patient_name': reader.text(values, 'dicom_patient_name'),
            'study_date': reader.date(values, 'study_date'),
            'study_time': reader.time(values, 'study_time'),
            'description': reader.text(values, 'description'),
            'modalities': reader.text(values, 'modalities'),
            'referring_physician': reader.text(
                values, 'referring_physician'),
            'institution': reader.text(values, 'institution'),
            'reception': (
                'complete' if values.get('complete') else 'receiving'),
            'pacs_state': 'available',
            }
        series = dict(
            Series.read_snapshot(reader, v)
            for v in reader.items(values, 'series'))
        return study_uid, Snapshot(study_values, series)

    @classmethod
    def _read_deleted(cls, reader, batch):
        "Return the Orthanc ids of the deleted resources by level"
        deleted = {level: [] for level in DELETED_LEVELS}
        for values in reader.items(batch, 'deleted'):
            level = values.get('level')
            if level not in DELETED_LEVELS:
                reader.error('msg_deleted_level', level=str(level)[:16])
            deleted[level].append(
                reader.uid(values, 'orthanc_id', required=True))
        return deleted

    @classmethod
    def _sync_snapshots(cls, server, snapshots):
        "Upsert the studies and their content, return them in batch order"
        pool = Pool()
        Series = pool.get('gnuhealth.radiology.series')
        ids, changed, _ = upsert(
            cls, 'server', 'study_uid', {server.id: snapshots}, (
                [('server', '=', server.id),
                    ('study_uid', 'in', list(study_uids))]
                for study_uids in grouped_slice(list(snapshots))))
        studies = cls.browse([ids[(server.id, uid)] for uid in snapshots])
        changed_ids = {ids[key] for key in changed}
        changed_ids |= Series.sync_from_pacs({
                s.id: snapshots[s.study_uid].children for s in studies})
        cls.write(
            [s for s in studies if s.id in changed_ids],
            {'last_sync': datetime.datetime.now()})
        return studies

    @classmethod
    def _apply_deleted(cls, server, deleted):
        "Mark the resources that Orthanc deleted with their content"
        pool = Pool()
        for level, orthanc_ids in deleted.items():
            model, server_path = DELETED_LEVELS[level]
            Model = pool.get(model)
            for sub_ids in grouped_slice(orthanc_ids):
                Model.mark_pacs_deleted(Model.search([
                            (server_path, '=', server.id),
                            ('orthanc_id', 'in', list(sub_ids)),
                            ], order=[]))

    @classmethod
    def _link_clinical(cls, studies):
        "Link the pushed studies to the people and orders they belong to"
        # The linking rules are in link.py and link_imaging.py.
