# This file is part of orthanc-gnuhealth.  The COPYRIGHT file at the top level
# of this repository contains the full copyright notices and license terms.
"""What studies, series and instances share: their Orthanc ID and PACS state,
the deletions a push reports, and fields copied from DICOM tags"""

from sql.aggregate import Count

from trytond.model import Index, fields
from trytond.pool import Pool
from trytond.tools import grouped_slice, reduce_ids
from trytond.transaction import Transaction

PACS_STATES = [
    ('available', "Available"),
    ('deleted', "Deleted"),
    ]
# The model and the path to its server of each level of the deleted list.
DELETED_LEVELS = {
    'study': ('gnuhealth.radiology.study', 'server'),
    'series': ('gnuhealth.radiology.series', 'study.server'),
    'instance': ('gnuhealth.radiology.instance', 'series.study.server'),
    }


def dicom_field(Field, string, tag, detail='', **kwargs):
    """Return a Field copied from the PACS: the plugin writes it from the
    DICOM tag, nobody edits it, and its help names the tag

    detail goes on the help after the tag, such as ", such as \"CT\"".
    """
    return Field(string=string, readonly=True,
        help="The DICOM %s%s." % (tag, detail), **kwargs)


def count_in_pacs(ids, from_, parent, *counted, where=None):
    """Return {parent id: [count of each counted column]} for the parent ids

    `from_` is the table (or join) holding `parent` and the counted columns;
    `where` narrows it (usually to what is still in the PACS). Parents
    without rows count zeros: one query per slice of ids, never one per
    record, as the study and series lists and the audit read many at once.
    """
    cursor = Transaction().connection.cursor()
    counts = {int(i): [0] * len(counted) for i in ids}
    for sub_ids in grouped_slice(list(counts)):
        condition = reduce_ids(parent, sub_ids)
        if where is not None:
            condition &= where
        cursor.execute(*from_.select(
                parent, *(Count(c, distinct=True) for c in counted),
                where=condition, group_by=parent))
        for parent_id, *numbers in cursor:
            counts[parent_id] = numbers
    return counts


def search_any(clause, names):
    """Return the domain of a search by name (clause) in any of the fields
    names; a negative search excludes what any of them matches"""
    _, operator, operand, *extra = clause
    if operator.startswith('!') or operator.startswith('not '):
        bool_op = 'AND'
    else:
        bool_op = 'OR'
    return [bool_op] + [(name, operator, operand, *extra) for name in names]


def read_deleted(reader, batch):
    "Return the Orthanc ids of the resources batch lists as deleted, by level"
    deleted = {level: [] for level in DELETED_LEVELS}
    for values in reader.items(batch, 'deleted'):
        level = values.get('level')
        if level not in DELETED_LEVELS:
            reader.error('msg_deleted_level', level=str(level)[:16])
        deleted[level].append(reader.uid(values, 'orthanc_id', required=True))
    return deleted


def mark_deleted(server, deleted):
    "Mark the resources of server that Orthanc deleted, with their content"
    pool = Pool()
    for level, orthanc_ids in deleted.items():
        model, server_path = DELETED_LEVELS[level]
        Model = pool.get(model)
        for sub_ids in grouped_slice(orthanc_ids):
            Model.mark_pacs_deleted(Model.search([
                        (server_path, '=', server.id),
                        ('orthanc_id', 'in', list(sub_ids)),
                        ], order=[]))


class PacsResourceMixin:
    "A resource of the PACS, kept when Orthanc deletes it"
    __slots__ = ()
    # The model of the resources it contains and their field pointing back,
    # marked deleted with it; None for instances.
    _pacs_children = None

    orthanc_id = fields.Char(
        "Orthanc ID", readonly=True,
        help="The identifier of the study, series or instance in Orthanc.")
    pacs_state = fields.Selection(
        PACS_STATES, "PACS State", readonly=True,
        help="Whether the images are still in the PACS. "
        "Records deleted from the PACS are kept.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_indexes.add(Index(t, (t.orthanc_id, Index.Equality())))

    @classmethod
    def default_pacs_state(cls):
        return 'available'

    @classmethod
    def mark_pacs_deleted(cls, records):
        "Mark the records and their content as deleted from the PACS"
        cls.write(
            [r for r in records if r.pacs_state != 'deleted'],
            {'pacs_state': 'deleted'})
        if not cls._pacs_children:
            return
        model, parent = cls._pacs_children
        Child = Pool().get(model)
        for sub_records in grouped_slice(records):
            Child.mark_pacs_deleted(Child.search([
                        (parent, 'in', [r.id for r in sub_records]),
                        ('pacs_state', '!=', 'deleted'),
                        ], order=[]))
