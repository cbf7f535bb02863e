# This file is part of orthanc-gnuhealth.  The COPYRIGHT file at the top level
# of this repository contains the full copyright notices and license terms.
"""Outside images brought in by radiology staff: an upload of DICOM files
or archives for a patient, which the Orthanc plugin claims, reconciles to
the patient's identity and stores in the PACS (with health_imaging)

GNU Health never holds a PACS credential: the plugin fetches the uploads
with its own session (`claim_uploads`) and reports back (`finish_upload`).
"""
import datetime

from trytond.exceptions import UserError
from trytond.i18n import gettext
from trytond.model import Index, ModelSQL, ModelView, fields
from trytond.pool import Pool
from trytond.pyson import Eval
from trytond.rpc import RPC
from trytond.transaction import Transaction, without_check_access

from .link_imaging import imaging_request_field
from .worklist import _DICOM_SEX, _person_name

STATES = [
    ('pending', "Pending"),
    ('importing', "Importing"),
    ('done', "Done"),
    ('failed', "Failed"),
    ]
# Only a new upload is edited; what the plugin reports is never.
_SAVED = Eval('id', -1) >= 0
# What finish_upload accepts of the plugin's result, and its field.
_COUNTS = ['stored', 'skipped', 'failed']


def reported(Field, string, help):
    """Return the field of what the Orthanc node reports (claim_uploads,
    finish_upload): nobody edits it"""
    return Field(string, readonly=True, help=help)


class Upload(ModelSQL, ModelView):
    "Radiology Upload"
    __name__ = 'gnuhealth.radiology.upload'
    _rec_name = 'filename'

    patient = fields.Many2One(
        'gnuhealth.patient', "Patient", required=True,
        states={'readonly': _SAVED},
        help="The patient the images are of: their identity replaces the "
        "one the images came with.")
    imaging_request = imaging_request_field(
        "The imaging order the images answer, if any: its code "
        "becomes their accession number.", states={'readonly': _SAVED})
    data = fields.Binary(
        "File", filename='filename', required=True,
        states={'readonly': _SAVED},
        help="A DICOM file (.dcm), or an archive of them "
        "(.zip, .tar.gz, .tgz, .gz).")
    filename = fields.Char(
        "File Name", required=True, states={'readonly': _SAVED},
        help="The name of the uploaded file; its ending tells its kind.")
    state = fields.Selection(
        STATES, "State", readonly=True, required=True,
        help="Pending until an Orthanc node claims the upload; importing "
        "while it stores the images; then done or failed.")
    message = reported(fields.Text, "Message",
        "What the import came to, or why it failed.")
    results = reported(fields.Text, "File Results",
        "One line per file of the upload: stored, skipped or failed, "
        "and why.")
    stored = reported(fields.Integer, "Stored",
        "The instances stored in the PACS by this upload.")
    skipped = reported(fields.Integer, "Skipped",
        "The files left out: DICOMDIR, not DICOM, or already in the PACS.")
    failed = reported(fields.Integer, "Failed",
        "The files the PACS refused or that could not be read.")
    orthanc_studies = reported(fields.Text, "Orthanc Studies",
        "The Orthanc IDs of the studies the upload stored, one a line.")
    studies = fields.Function(fields.Many2Many(
            'gnuhealth.radiology.study', None, None, "Studies",
            help="The studies the upload stored, once the PACS pushed "
            "them."),
        'get_studies')
    uploader = fields.Many2One(
        'res.user', "Uploader", readonly=True,
        help="Who uploaded the file.")
    uploaded = fields.DateTime(
        "Uploaded", readonly=True, help="When the file was uploaded.")
    node = reported(fields.Char, "Orthanc Node",
        "The Orthanc node that claimed the upload.")
    claimed = reported(fields.DateTime, "Claimed",
        "When an Orthanc node claimed it.")
    finished = reported(
        fields.DateTime, "Finished", "When the import ended.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_indexes.add(Index(t, (t.state, Index.Equality())))
        cls._order = [('uploaded', 'DESC NULLS FIRST'), ('id', 'DESC')]
        cls.__rpc__.update({
                'claim_uploads': RPC(readonly=False),
                'finish_upload': RPC(readonly=False),
                })
        cls._buttons.update({
                'retry': {
                    'invisible': ~Eval('state').in_(['importing', 'failed']),
                    'depends': ['state'],
                    },
                })

    @classmethod
    def default_state(cls):
        return 'pending'

    @classmethod
    def default_uploader(cls):
        return Transaction().user

    @classmethod
    def default_uploaded(cls):
        return datetime.datetime.now()

    @classmethod
    def default_patient(cls):
        # The "Upload images" action of an imaging request gives the request.
        request_id = Transaction().context.get('default_imaging_request')
        if request_id:
            Request = Pool().get('gnuhealth.imaging.test.request')
            return Request(request_id).patient.id

    @fields.depends('imaging_request', 'patient')
    def on_change_imaging_request(self):
        if self.imaging_request:
            self.patient = self.imaging_request.patient

    @classmethod
    def get_studies(cls, uploads, name):
        Study = Pool().get('gnuhealth.radiology.study')
        ids = {u.id: (u.orthanc_studies or '').split() for u in uploads}
        wanted = {i for v in ids.values() for i in v}
        found = {}
        for study in Study.search([('orthanc_id', 'in', sorted(wanted))],
                order=[('id', 'ASC')]):
            found.setdefault(study.orthanc_id, []).append(study.id)
        return {u: [s for o in orthanc_ids for s in found.get(o, [])]
            for u, orthanc_ids in ids.items()}

    @classmethod
    def create(cls, vlist):
        # The staff's own name and time, whatever a client sends.
        vlist = [{**v, 'state': 'pending',
                'uploader': Transaction().user,
                'uploaded': datetime.datetime.now()} for v in vlist]
        return super().create(vlist)

    @classmethod
    @ModelView.button
    def retry(cls, uploads):
        """Give failed uploads, or those of a node gone for good, back to
        the Orthanc nodes: imported again, nothing is stored twice"""
        # The button's groups (upload.xml) say who may; staff may not
        # write an upload otherwise.
        with without_check_access():
            cls.write([u for u in uploads if u.state in {'importing', 'failed'}],
                {'state': 'pending', 'node': None, 'claimed': None})

    @classmethod
    def claim_uploads(cls, node, limit):
        """Claim up to `limit` pending uploads for Orthanc node `node` and
        return what it needs to import each one

        An upload goes to one node only: each is moved from pending to
        importing by an UPDATE that checks it is still pending, so two
        nodes asking at once never both get it (on PostgreSQL the second
        writer waits, then updates nothing or fails to serialize and asks
        again). The node's own uploads still importing are given again: it
        restarted during their import, which is idempotent.
        """
        ModelAccess = Pool().get('ir.model.access')
        ModelAccess.check(cls.__name__, 'write')
        if not isinstance(node, str) or not node or not isinstance(
                limit, int) or limit < 1:
            raise UserError(gettext('health_radiology.msg_upload_claim_args',
                    node=node, limit=limit))
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        cursor.execute(*table.select(table.id,
                where=cls._claimable(table, node),
                order_by=[table.id.asc], limit=limit))
        claimed = cls.browse(cls._take([i for i, in cursor.fetchall()], node))
        with without_check_access():
            # The staff chose the patient; the node reads what it imports.
            return [u._claim_values() for u in claimed]

    @staticmethod
    def _claimable(table, node):
        "The SQL condition of the uploads `node` may claim"
        return (table.state == 'pending') | (
            (table.state == 'importing') & (table.node == node))

    @classmethod
    def _take(cls, ids, node):
        """Move the uploads of `ids` to importing for `node`, each only if
        it is still claimable, and return the ids moved: one another node
        took since they were read is left to it"""
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        now = datetime.datetime.now()
        taken = []
        for id_ in ids:
            cursor.execute(*table.update(
                    [table.state, table.node, table.claimed],
                    ['importing', node, now],
                    where=(table.id == id_) & cls._claimable(table, node)))
            if cursor.rowcount == 1:
                taken.append(id_)
        # Again through the ORM, which clears the records' caches.
        cls.write(cls.browse(taken),
            {'state': 'importing', 'node': node, 'claimed': now})
        return taken

    def _claim_values(self):
        party = self.patient.party
        row = {f: getattr(party, f) for f in ['is_person', 'lastname', 'name']}
        request = self.imaging_request
        return {
            'id': self.id,
            'filename': self.filename,
            'data': self.data,
            'patient_id': party.ref or '',
            'patient_name': '^'.join(_person_name(row)),
            'birth_date': party.dob.strftime('%Y%m%d') if party.dob else '',
            'sex': _DICOM_SEX.get(party.gender, 'O'),
            'accession': (request.request or '') if request else '',
            }

    @classmethod
    def finish_upload(cls, upload_id, result):
        """Record what the import of upload `upload_id` came to

        `result`: {"state": "done" or "failed", "message", "stored",
        "skipped", "failed", "results" (text, a line per file), "studies"
        (the Orthanc study IDs)}. Reporting again an upload already
        finished (the node retried after a lost answer) writes it again.
        """
        upload = cls(upload_id)
        if upload.state == 'pending' or not isinstance(result, dict) or (
                result.get('state') not in {'done', 'failed'}):
            raise UserError(gettext('health_radiology.msg_upload_finish',
                    upload=upload_id, state=upload.state, result=result))
        values = {
            'state': result['state'],
            'message': str(result.get('message') or ''),
            'results': str(result.get('results') or ''),
            'orthanc_studies': '\n'.join(
                str(s) for s in result.get('studies') or []),
            'finished': datetime.datetime.now(),
            }
        for name in _COUNTS:
            count = result.get(name, 0)
            values[name] = count if isinstance(count, int) else 0
        cls.write([upload], values)
        return upload.id
