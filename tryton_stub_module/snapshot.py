# This file is part of orthanc-gnuhealth.  The COPYRIGHT file at the top level
# of this repository contains the full copyright notices and license terms.
"Turn the snapshots pushed by the Orthanc plugin into records"

import datetime
from collections import defaultdict, namedtuple

from sql.functions import CurrentTimestamp

from trytond.exceptions import UserError
from trytond.i18n import gettext
from trytond.model import ModelSQL, ModelStorage, Unique
from trytond.tools import grouped_slice, reduce_ids
from trytond.transaction import Transaction

# DICOM limits a UID to 64 characters; Orthanc identifiers are 44.
UID_SIZE = 64
# Free text from modalities is short in DICOM (LO is 64 characters) but
# vendors overflow it; beyond this size the value is garbage, not text.
TEXT_SIZE = 1024
# PostgreSQL's integer column.
INTEGER_MAX = 2 ** 31 - 1

# The values of one record and the snapshots of its children by key.
Snapshot = namedtuple('Snapshot', ['values', 'children'])


class SnapshotReader:
    "Read the values pushed by the plugin, naming their subject on errors"

    def __init__(self, subject):
        # subject is a translated description such as 'study "1.2.3"'.
        self.subject = subject

    @classmethod
    def for_study(cls, values):
        "Return the reader of a study, named by whatever identifies it"
        return cls(gettext('health_radiology.msg_subject_study',
                study=str(values.get('study_uid'))[:UID_SIZE],
                orthanc_id=str(values.get('orthanc_id'))[:UID_SIZE]))

    def error(self, message, **values):
        raise UserError(gettext(
                'health_radiology.' + message, subject=self.subject, **values))

    def mapping(self, value, name):
        if not isinstance(value, dict):
            self.error('msg_snapshot_not_mapping', field=name)
        return value

    def items(self, values, name):
        "Return the list of mappings under name, empty when absent"
        items = values.get(name) or []
        if not isinstance(items, (list, tuple)):
            self.error('msg_snapshot_not_list', field=name)
        return [self.mapping(item, name) for item in items]

    def texts(self, values, name):
        "Return the list of texts under name, None when absent"
        items = values.get(name)
        if items is None:
            return None
        if not isinstance(items, (list, tuple)):
            self.error('msg_snapshot_not_list', field=name)
        return [self.text({name: item}, name) for item in items]

    def text(self, values, name, size=TEXT_SIZE):
        value = values.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            self.error('msg_snapshot_not_text', field=name)
        # DICOM pads values with NUL and spaces, and PostgreSQL refuses NUL.
        value = value.replace('\x00', '').strip()
        try:
            value.encode('utf-8')
        except UnicodeEncodeError:
            self.error('msg_snapshot_not_text', field=name)
        if len(value) > size:
            self.error('msg_snapshot_too_long', field=name, size=size)
        return value or None

    def uid(self, values, name, required=False):
        value = self.text(values, name, size=UID_SIZE)
        if required and not value:
            self.error('msg_snapshot_missing', field=name)
        return value

    def integer(self, values, name):
        value = values.get(name)
        if value is None or value == '':
            return None
        try:
            if isinstance(value, (bool, float)):
                raise ValueError
            value = int(value)
        except ValueError:
            self.error('msg_snapshot_not_integer', field=name)
        if abs(value) > INTEGER_MAX:
            self.error('msg_snapshot_not_integer', field=name)
        return value

    def date(self, values, name):
        value = self.text(values, name)
        if value is None:
            return None
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            self.error('msg_snapshot_not_date', field=name, value=value)

    def time(self, values, name):
        value = self.text(values, name)
        if value is None:
            return None
        try:
            value = datetime.time.fromisoformat(value)
        except ValueError:
            self.error('msg_snapshot_not_time', field=name, value=value)
        # The Time field validates against '%H:%M:%S'.
        return value.replace(microsecond=0, tzinfo=None)


def upsert(Model, parent, key, snapshots, domains, bulk=False):
    """Create or update the records of Model from snapshots

    snapshots maps a parent id to {key value: Snapshot}; domains find the
    records already stored for those parents, in slices.
    Return the ids by (parent id, key value), the keys of the records
    created or changed, and the ids by key of the records absent from their
    parent's snapshot that are not yet marked as deleted.
    Stored values are read as rows, not records, and writes are grouped by
    identical values: a batch of thousands of instances costs a handful of
    queries. With bulk, new records are created by bulk_create(), for a
    Model whose every stored value comes checked by SnapshotReader.
    """
    names = {parent, key, 'pacs_state'}
    for children in snapshots.values():
        for snapshot in children.values():
            names.update(snapshot.values)
    stored = {
        (row[parent], row[key]): row
        for domain in domains
        for row in Model.search_read(
            domain, order=[], fields_names=sorted(names))}
    ids, to_create, to_write, changed = {}, [], defaultdict(list), set()
    for parent_id, children in snapshots.items():
        for key_value, snapshot in children.items():
            record_key = (parent_id, key_value)
            row = stored.get(record_key)
            if row is None:
                to_create.append((record_key, {
                            parent: parent_id, key: key_value,
                            **snapshot.values}))
                changed.add(record_key)
                continue
            ids[record_key] = row['id']
            diff = {
                n: v for n, v in snapshot.values.items() if row[n] != v}
            if diff:
                to_write[tuple(sorted(diff.items()))].append(row['id'])
                changed.add(record_key)
    args = []
    for diff, record_ids in to_write.items():
        args.extend((Model.browse(record_ids), dict(diff)))
    if args:
        Model.write(*args)
    if to_create and bulk:
        ids.update(bulk_create(Model, parent, key, to_create))
    elif to_create:
        keys, vlist = zip(*to_create)
        ids.update(zip(keys, map(int, Model.create(list(vlist)))))
    missing = {
        record_key: row['id'] for record_key, row in stored.items()
        if record_key[1] not in snapshots.get(record_key[0], {})
        and row['pacs_state'] != 'deleted'}
    return ids, changed, missing


def bulk_create(Model, parent, key, to_create):
    """Create the records of [((parent id, key value), values)]; return
    their ids by (parent id, key value)

    ModelSQL.create checks each new record in Python (required fields,
    selections, and on SQLite the unique constraints with one OR term per
    row) and inserts them one by one on SQLite: for the thousands of
    instances of a push, most of the push's time. Where nothing else would
    differ, the rows are inserted here with one multi-row INSERT per
    slice: the values come from SnapshotReader, which checked them already
    (required UIDs, sizes, integers; 'available' is a PACS state). Kept from
    ModelSQL.create: the access checks, the defaults, create_uid and
    create_date, the transaction's created records, the record rules on
    create, the triggers, and the unique constraint on (parent, key),
    checked on every backend with the query that reads the new ids (one
    per slice of parents). Otherwise (a module overriding create or
    validate, history), ModelSQL.create.
    """
    keys, vlist = zip(*to_create)
    unique = _unique_constraint(Model, parent, key)
    if unique is None or not _plain_create(Model):
        return dict(zip(keys, map(int, Model.create(list(vlist)))))
    ModelStorage.create.__func__(Model, vlist)  # access checks, counters
    defaults = _defaults(Model, set().union(*vlist))
    names = sorted(set().union(*vlist, defaults))
    transaction = Transaction()
    table = Model.__table__()
    columns = [table.create_uid, table.create_date] + [
        getattr(table, n) for n in names]
    cursor = transaction.connection.cursor()
    for sub_values in grouped_slice(
            vlist, transaction.database.IN_MAX // len(columns)):
        rows = []
        for values in sub_values:
            values = {**defaults, **values}
            rows.append([transaction.user, CurrentTimestamp()] + [
                    Model._fields[n].sql_format(values[n]) for n in names])
        cursor.execute(*table.insert(columns, rows))
    ids = _created_ids(Model, parent, key, set(keys), unique)
    transaction.create_records[Model.__name__].update(ids.values())
    # ModelSQL.create's own check of the record rules on create (private
    # in trytond 7.0, hence the mangled name): same queries, same errors.
    Model._ModelSQL__check_domain_rule(list(ids.values()), 'create')
    Model.trigger_create(Model.browse(list(ids.values())))
    return ids


def _plain_create(Model):
    "Whether ModelSQL.create would do no more than bulk_create() does"
    return (Model.create.__func__ is ModelSQL.create.__func__
        and Model.validate.__func__ is ModelSQL.validate.__func__
        and Model.validate_fields.__func__
        is ModelStorage.validate_fields.__func__
        and not Model._history
        and Transaction().database.has_multirow_insert())


def _unique_constraint(Model, parent, key):
    "The error message of Model's unique constraint on (parent, key)"
    for _, constraint, error in Model._sql_constraints:
        if (isinstance(constraint, Unique)
                and [c.name for c in constraint.columns] == [parent, key]):
            return error


def _defaults(Model, given):
    "The default values of Model's stored fields not in given"
    names = [
        n for n, f in Model._fields.items()
        if n not in given and n not in {
            'id', 'create_uid', 'create_date', 'write_uid', 'write_date'}
        and not hasattr(f, 'set')]  # Function, One2Many...: not a column
    return Model._clean_defaults(
        Model.default_get(names, with_rec_name=False))


def _created_ids(Model, parent, key, keys, error):
    """The ids of the records just created by (parent, key); raise the
    unique constraint's error when one of those keys is there twice"""
    table = Model.__table__()
    parent_column, key_column = getattr(table, parent), getattr(table, key)
    cursor = Transaction().connection.cursor()
    ids = {}
    for sub_ids in grouped_slice(list({p for p, _ in keys})):
        cursor.execute(*table.select(table.id, parent_column, key_column,
                where=reduce_ids(parent_column, sub_ids)))
        for id_, *record_key in cursor:
            record_key = tuple(record_key)
            if record_key in keys:
                if record_key in ids:
                    raise UserError(gettext(error))
                ids[record_key] = id_
    return ids
