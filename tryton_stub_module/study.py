# This file is part of orthanc-gnuhealth.  The COPYRIGHT file at the top level
# of this repository contains the full copyright notices and license terms.
"The study record as the PACS holds it, and the push that stores it"

import datetime
import hashlib

from sql import Null

from trytond import backend
from trytond.i18n import gettext
from trytond.model import Index, ModelSQL, ModelView, Unique, fields
from trytond.pool import Pool
from trytond.rpc import RPC
from trytond.tools import grouped_slice
from trytond.transaction import Transaction

from .pacs_resource import (
    PacsResourceMixin, count_in_pacs, dicom_field, mark_deleted, read_deleted,
    search_any)
from .server import viewer_link
from .snapshot import Snapshot, SnapshotReader, upsert

DICOM_SEXES = [
    (None, ""),
    ('M', "Male"),
    ('F', "Female"),
    ('O', "Other"),
    ]
# The patient's tags are what the modality recorded, not GNU Health's record.
AS_RECORDED = " as the modality recorded it"


def orthanc_study_id(patient_id, study_uid):
    """Return the ID Orthanc gives the study of patient_id and study_uid

    The SHA-1 of "PatientID|StudyInstanceUID" as 5 groups of 8 hex digits.
    """
    digest = hashlib.sha1(
        ('%s|%s' % (patient_id or '', study_uid)).encode('utf-8')).hexdigest()
    return '-'.join(digest[i:i + 8] for i in range(0, len(digest), 8))


class Study(PacsResourceMixin, ModelSQL, ModelView):
    "Radiology Study"
    __name__ = 'gnuhealth.radiology.study'
    _rec_name = 'study_uid'
    _pacs_children = ('gnuhealth.radiology.series', 'study')

    server = fields.Many2One(
        'gnuhealth.radiology.server', "Server", required=True,
        readonly=True, ondelete='RESTRICT',
        help="The PACS server that holds the study.")
    study_uid = dicom_field(fields.Char, "Study Instance UID",
        'StudyInstanceUID', ". Two studies of a server share it when it "
        "arrived under two PatientIDs", required=True)
    accession = dicom_field(fields.Char, "Accession Number",
        'AccessionNumber', ", usually the order code")
    accession_issuer = fields.Char(
        "Accession Issuer", readonly=True,
        help="Who issued the accession number "
        "(DICOM IssuerOfAccessionNumberSequence), when the modality says.")
    dicom_patient_id = dicom_field(fields.Char, "DICOM Patient ID",
        'PatientID', AS_RECORDED)
    dicom_patient_name = dicom_field(fields.Char, "DICOM Patient Name",
        'PatientName', AS_RECORDED)
    dicom_patient_birth_date = dicom_field(fields.Date,
        "DICOM Patient Birth Date", 'PatientBirthDate', AS_RECORDED)
    dicom_patient_sex = dicom_field(fields.Selection, "DICOM Patient Sex",
        'PatientSex', AS_RECORDED, selection=DICOM_SEXES)
    study_date = dicom_field(fields.Date, "Study Date", 'StudyDate')
    study_time = dicom_field(fields.Time, "Study Time", 'StudyTime')
    description = dicom_field(fields.Char, "Description", 'StudyDescription')
    modalities = fields.Char(
        "Modalities", readonly=True,
        help="The modalities of the study's series, such as \"CT MR\".")
    referring_physician = dicom_field(fields.Char, "Referring Physician",
        'ReferringPhysicianName')
    institution = dicom_field(fields.Char, "Institution", 'InstitutionName')
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
    pacs_last_update = fields.Char(
        "PACS Last Update", readonly=True,
        help="Orthanc's LastUpdate of the study when it was last pushed, "
        "such as 20261201T093000.")
    ohif_url = viewer_link("OHIF Viewer", "the study", "the OHIF viewer")
    stone_url = viewer_link(
        "Stone Viewer", "the study", "the Stone Web Viewer")
    explorer_url = viewer_link(
        "Orthanc Explorer", "the study", "Orthanc Explorer")
    oe2_url = viewer_link(
        "Orthanc Explorer 2", "the study", "Orthanc Explorer 2")
    webviewer_url = viewer_link("Orthanc Web Viewer",
        "the study's first series", "the Orthanc Web Viewer",
        'get_webviewer_url')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        # One record per Orthanc study: Orthanc's study ID covers the
        # PatientID and the StudyInstanceUID.
        cls.orthanc_id.required = True
        cls._sql_constraints = [
            ('orthanc_id_unique', Unique(t, t.server, t.orthanc_id),
                'health_radiology.msg_study_orthanc_id_unique'),
            ]
        cls._sql_indexes.update({
                Index(t, (t.study_uid, Index.Equality())),
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
    def __register__(cls, module):
        # Before calling __table_handler__, which creates the table.
        exists = backend.TableHandler.table_exist(cls._table)
        table_h = cls.__table_handler__(module)
        if exists:
            # Before one record per Orthanc study, a server held a
            # StudyInstanceUID once, and the Orthanc ID was optional.
            table_h.drop_constraint('study_uid_unique')
            cls._fill_orthanc_id()
        super().__register__(module)

    @classmethod
    def _fill_orthanc_id(cls):
        "Give the studies stored without an Orthanc ID the one Orthanc uses"
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        cursor.execute(*table.select(
                table.id, table.dicom_patient_id, table.study_uid,
                where=table.orthanc_id == Null))
        for id_, patient_id, study_uid in cursor.fetchall():
            cursor.execute(*table.update(
                    [table.orthanc_id],
                    [orthanc_study_id(patient_id, study_uid)],
                    where=table.id == id_))

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
        return search_any(clause, [
                'study_uid', 'accession', 'description',
                'dicom_patient_id', 'dicom_patient_name'])

    @classmethod
    def get_instance_count(cls, studies, name):
        pool = Pool()
        series = pool.get('gnuhealth.radiology.series').__table__()
        instance = pool.get('gnuhealth.radiology.instance').__table__()
        counts = count_in_pacs(studies,
            series.join(instance, condition=instance.series == series.id),
            series.study, instance.id, where=instance.pacs_state == 'available')
        return {i: n for i, (n,) in counts.items()}

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
        Return the record id of each pushed study and the note of each
        study of the server touched by the batch that is in conflict, by
        Orthanc ID.
        """
        pool = Pool()
        Server = pool.get('gnuhealth.radiology.server')
        reader = SnapshotReader(gettext('health_radiology.msg_subject_batch'))
        batch = reader.mapping(batch, 'batch')
        server = Server.from_pacs(batch.get('server'))
        snapshots = {}
        for values in reader.items(batch, 'studies'):
            orthanc_id, snapshot = cls._read_snapshot(values)
            snapshots[orthanc_id] = snapshot
        deleted = read_deleted(reader, batch)
        studies = cls._sync_snapshots(server, snapshots)
        # Deletions come after the snapshots as Orthanc logged them later.
        mark_deleted(server, deleted)
        touched = cls._link_clinical(studies)
        return {
            'studies': {s.orthanc_id: s.id for s in studies},
            'conflicts': {
                s.orthanc_id: s.link_note for s in cls.browse(touched)
                if s.link_state == 'conflict'},
            }

    @classmethod
    def _read_snapshot(cls, values):
        "Return the Orthanc ID and the Snapshot of a pushed study"
        pool = Pool()
        Series = pool.get('gnuhealth.radiology.series')
        reader = SnapshotReader.for_study(values)
        orthanc_id = reader.uid(values, 'orthanc_id', required=True)
        sex = reader.text(values, 'dicom_patient_sex')
        study_values = {
            'study_uid': reader.uid(values, 'study_uid', required=True),
            'accession': reader.text(values, 'accession'),
            'accession_issuer': reader.text(values, 'accession_issuer'),
            'dicom_patient_id': reader.text(values, 'dicom_patient_id'),
            'dicom_patient_name': reader.text(values, 'dicom_patient_name'),
            'dicom_patient_birth_date': reader.date(
                values, 'dicom_patient_birth_date'),
            # Values outside DICOM's M, F and O say nothing.
            'dicom_patient_sex': sex if sex in {'M', 'F', 'O'} else None,
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
            'pacs_last_update': reader.text(values, 'last_update'),
            }
        series = dict(
            Series.read_snapshot(reader, v)
            for v in reader.items(values, 'series'))
        return orthanc_id, Snapshot(study_values, series)

    @classmethod
    def _sync_snapshots(cls, server, snapshots):
        "Upsert the studies and their content, return them in batch order"
        pool = Pool()
        Series = pool.get('gnuhealth.radiology.series')
        ids, changed, _ = upsert(
            cls, 'server', 'orthanc_id', {server.id: snapshots}, (
                [('server', '=', server.id),
                    ('orthanc_id', 'in', list(orthanc_ids))]
                for orthanc_ids in grouped_slice(list(snapshots))))
        studies = cls.browse([ids[(server.id, o)] for o in snapshots])
        changed_ids = {ids[key] for key in changed}
        changed_ids |= Series.sync_from_pacs({
                s.id: snapshots[s.orthanc_id].children for s in studies})
        cls.write(
            [s for s in studies if s.id in changed_ids],
            {'last_sync': datetime.datetime.now()})
        return studies

    @classmethod
    def _link_clinical(cls, studies):
        """Link the pushed studies to the people and orders they belong to

        Return the ids of the studies whose link was looked at.
        """
        # The linking rules are in link.py and link_imaging.py.
        return [s.id for s in studies]
