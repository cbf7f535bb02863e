# This file is part of orthanc-gnuhealth.  The COPYRIGHT file at the top level
# of this repository contains the full copyright notices and license terms.
import datetime
from collections import defaultdict

from sql.aggregate import Count

from trytond.i18n import gettext
from trytond.model import Index, ModelSQL, ModelView, Unique, fields
from trytond.pool import Pool
from trytond.pyson import Eval, Id
from trytond.rpc import RPC
from trytond.tools import grouped_slice, reduce_ids
from trytond.transaction import Transaction, without_check_access

from .sync import Snapshot, SnapshotReader, upsert

PACS_STATES = [
    ('available', "Available"),
    ('deleted', "Deleted"),
    ]
LINK_STATES = [
    ('unmatched', "Unmatched"),
    ('linked', "Linked"),
    ('conflict', "Conflict"),
    ]
PACS_STATE_HELP = (
    "Whether the images are still in the PACS. "
    "Records deleted from the PACS are kept.")
# The model and the path to its server of each level of the deleted list.
DELETED_LEVELS = {
    'study': ('gnuhealth.radiology.study', 'server'),
    'series': ('gnuhealth.radiology.series', 'study.server'),
    'instance': ('gnuhealth.radiology.instance', 'series.study.server'),
    }


# Only radiology staff and administrators may change a study's links; for
# everyone else (clinicians) the form shows them read-only rather than
# failing when saved.
_GROUPS = Eval('context', {}).get('groups', [])
LINK_READONLY = ~(Id('health_radiology', 'group_radiology_staff').in_(_GROUPS)
    | Id('health_radiology', 'group_radiology_admin').in_(_GROUPS))


class Study(ModelSQL, ModelView):
    "Radiology Study"
    __name__ = 'gnuhealth.radiology.study'
    _rec_name = 'study_uid'

    server = fields.Many2One(
        'gnuhealth.radiology.server', "Server", required=True,
        readonly=True, ondelete='RESTRICT',
        help="The PACS server that holds the study.")
    study_uid = fields.Char(
        "Study Instance UID", required=True, readonly=True,
        help="The DICOM StudyInstanceUID.")
    orthanc_id = fields.Char(
        "Orthanc ID", readonly=True,
        help="The identifier of the study in Orthanc.")
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
    pacs_state = fields.Selection(
        PACS_STATES, "PACS State", readonly=True, help=PACS_STATE_HELP)
    last_sync = fields.DateTime(
        "Last Synchronization", readonly=True,
        help="When a push from the PACS last changed the study.")
    party = fields.Many2One(
        'party.party', "Party", states={'readonly': LINK_READONLY},
        help="The person the images belong to.")
    link_state = fields.Selection(
        LINK_STATES, "Link State", readonly=True,
        help="Whether the study is linked to the person (and order) it "
        "belongs to, found nothing to link to, or found contradicting "
        "evidence that a person must resolve.")
    link_note = fields.Char(
        "Link Note", readonly=True,
        help="Why the study is linked, unmatched or in conflict.")
    linked_by = fields.Many2One(
        'res.user', "Linked By", readonly=True, ondelete='RESTRICT',
        help="The person who last linked the study by hand. "
        "Automatic matching never changes a study linked by hand.")
    linked_at = fields.DateTime(
        "Linked At", readonly=True,
        help="When the study was last linked by hand.")
    link_history = fields.One2Many(
        'gnuhealth.radiology.study.link_log', 'study', "Link History",
        readonly=True, help="Who linked the study by hand, and when.")
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
                Index(t, (t.orthanc_id, Index.Equality())),
                Index(t, (t.accession, Index.Equality())),
                Index(t, (t.dicom_patient_id, Index.Equality())),
                Index(t, (t.link_state, Index.Equality())),
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

    @classmethod
    def default_pacs_state(cls):
        return 'available'

    @classmethod
    def default_link_state(cls):
        return 'unmatched'

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
    def mark_pacs_deleted(cls, studies):
        "Mark the studies and their content as deleted from the PACS"
        pool = Pool()
        Series = pool.get('gnuhealth.radiology.series')
        cls.write(
            [s for s in studies if s.pacs_state != 'deleted'],
            {'pacs_state': 'deleted'})
        for sub_studies in grouped_slice(studies):
            Series.mark_pacs_deleted(Series.search([
                        ('study', 'in', [s.id for s in sub_studies]),
                        ('pacs_state', '!=', 'deleted'),
                        ], order=[]))

    # Clinical linking
    #
    # The automatic matcher fills the link fields with the context key
    # _radiology_matching; any other write of them is a person's decision,
    # recorded with who and when, and never overridden by the matcher.

    @classmethod
    def _link_fields(cls):
        "Return the names of the fields that link a study to its records"
        return {'party'}

    @classmethod
    def write(cls, *args):
        manual = not Transaction().context.get('_radiology_matching')
        link_fields = cls._link_fields()
        touched = []
        actions = iter(args)
        for records, values in zip(actions, actions):
            if manual and link_fields & set(values):
                touched.extend(records)
        super().write(*args)
        if touched:
            cls._record_manual_link(cls.browse(list({s.id for s in touched})))

    @classmethod
    def _manual_link_values(cls, study):
        "Return the values to complete the links a person set on study"
        return {}

    def _is_linked(self):
        return bool(self.party)

    @classmethod
    def _record_manual_link(cls, studies):
        "Record who linked the studies by hand, and when"
        pool = Pool()
        User = pool.get('res.user')
        LinkLog = pool.get('gnuhealth.radiology.study.link_log')
        transaction = Transaction()
        now = datetime.datetime.now()
        user = User(transaction.user)
        args, logs = [], []
        with without_check_access(), \
                transaction.set_context(_radiology_matching=True):
            for study in studies:
                values = cls._manual_link_values(study)
                if values:
                    cls.write([study], values)
            studies = cls.browse([s.id for s in studies])
            for study in studies:
                linked = study._is_linked()
                note = gettext(
                    'health_radiology.msg_linked_by_hand' if linked
                    else 'health_radiology.msg_unlinked_by_hand',
                    user=user.rec_name)
                args.extend(([study], {
                            'link_state': 'linked' if linked else 'unmatched',
                            'link_note': note,
                            'linked_by': user.id,
                            'linked_at': now,
                            }))
                logs.append({
                        'study': study.id,
                        'user': user.id,
                        'date': now,
                        'description': study._link_description(),
                        })
            cls.write(*args)
            LinkLog.create(logs)
            cls._clinical_linked(cls.browse([s.id for s in studies]))

    def _link_description(self):
        "Return a text describing what the study is linked to"
        return self.party.rec_name if self.party else None

    @classmethod
    def _link_clinical(cls, studies):
        """Link the pushed studies to the clinical records they belong to

        Studies linked by hand are left as they are. Matching is done for
        the whole list at once, with a handful of queries.
        """
        studies = [s for s in studies if not s.linked_by]
        if not studies:
            return
        transaction = Transaction()
        with without_check_access(), \
                transaction.set_context(_radiology_matching=True):
            matches = cls._match_clinical(studies)
            to_write = defaultdict(list)
            for study in studies:
                diff = {}
                for name, value in matches[study.id].items():
                    current = getattr(study, name)
                    current = getattr(current, 'id', current)
                    if current != value:
                        diff[name] = value
                if diff:
                    to_write[tuple(sorted(diff.items()))].append(study)
            args = []
            for diff, records in to_write.items():
                args.extend((records, dict(diff)))
            if args:
                cls.write(*args)
            studies = cls.browse([s.id for s in studies])
            cls._clinical_linked(
                [s for s in studies if s.link_state == 'linked'])

    @classmethod
    def _match_clinical(cls, studies):
        """Return the link values of each study by id

        Plain Tryton: the DICOM PatientID is the code or an identifier of a
        party.
        """
        parties = cls._parties_by_patient_id(
            {s.dicom_patient_id for s in studies if s.dicom_patient_id})
        matches = {}
        for study in studies:
            candidates = parties.get(study.dicom_patient_id, [])
            values = {'party': None}
            if len(candidates) == 1:
                party, = candidates
                values.update(party=party.id, link_state='linked',
                    link_note=gettext('health_radiology.msg_match_party',
                        patient_id=study.dicom_patient_id,
                        party=party.rec_name))
            elif candidates:
                values.update(link_state='conflict',
                    link_note=gettext('health_radiology.msg_match_ambiguous',
                        patient_id=study.dicom_patient_id,
                        parties=', '.join(p.rec_name for p in candidates)))
            else:
                values.update(cls._unmatched_values(study))
            matches[study.id] = values
        return matches

    @classmethod
    def _unmatched_values(cls, study):
        if study.dicom_patient_id:
            note = gettext('health_radiology.msg_match_unknown_patient_id',
                patient_id=study.dicom_patient_id)
        else:
            note = gettext('health_radiology.msg_match_no_patient_id')
        return {'link_state': 'unmatched', 'link_note': note}

    @classmethod
    def _parties_by_patient_id(cls, patient_ids):
        "Return the parties whose code or an identifier is each PatientID"
        pool = Pool()
        Party = pool.get('party.party')
        found = defaultdict(list)
        for sub_ids in grouped_slice(sorted(patient_ids)):
            sub_ids = list(sub_ids)
            for party in Party.search(['OR',
                        ('code', 'in', sub_ids),
                        ('identifiers.code', 'in', sub_ids),
                        ], order=[('id', 'ASC')]):
                codes = {party.code} | {i.code for i in party.identifiers}
                for code in codes & patient_ids:
                    found[code].append(party)
        return found

    @classmethod
    def _clinical_linked(cls, studies):
        "Move forward the clinical records of the studies just linked"

    @classmethod
    def match_pending(cls, domain):
        """Match again the studies not linked by hand within domain

        Called when a record that a study may belong to appears, and by the
        "match again" wizard; safe to run on every unmatched study.
        """
        with without_check_access():
            studies = cls.search(
                [('linked_by', '=', None), domain], order=[('id', 'ASC')])
            for sub_studies in grouped_slice(studies):
                cls._link_clinical(list(sub_studies))
        return studies


class StudyLinkLog(ModelSQL, ModelView):
    "Radiology Study Link History"
    __name__ = 'gnuhealth.radiology.study.link_log'

    study = fields.Many2One(
        'gnuhealth.radiology.study', "Study", required=True, readonly=True,
        ondelete='CASCADE', help="The study linked by hand.")
    user = fields.Many2One(
        'res.user', "User", readonly=True, ondelete='RESTRICT',
        help="The person who linked the study.")
    date = fields.DateTime(
        "Date", readonly=True, help="When the study was linked.")
    description = fields.Char(
        "Linked To", readonly=True,
        help="What the study was linked to; empty when it was unlinked.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [('date', 'DESC'), ('id', 'DESC')]
