# This file is part of orthanc-gnuhealth.  The COPYRIGHT file at the top level
# of this repository contains the full copyright notices and license terms.
"Turn the snapshots pushed by the Orthanc plugin into records"

import datetime
from collections import defaultdict, namedtuple

from trytond.exceptions import UserError
from trytond.i18n import gettext

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


def upsert(Model, parent, key, snapshots, domains):
    """Create or update the records of Model from snapshots

    snapshots maps a parent id to {key value: Snapshot}; domains find the
    records already stored for those parents, in slices.
    Return the ids by (parent id, key value), the keys of the records
    created or changed, and the ids by key of the records absent from their
    parent's snapshot that are not yet marked as deleted.
    Stored values are read as rows, not records, and writes are grouped by
    identical values: a batch of thousands of instances costs a handful of
    queries.
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
    if to_create:
        keys, vlist = zip(*to_create)
        ids.update(zip(keys, map(int, Model.create(list(vlist)))))
    missing = {
        record_key: row['id'] for record_key, row in stored.items()
        if record_key[1] not in snapshots.get(record_key[0], {})
        and row['pacs_state'] != 'deleted'}
    return ids, changed, missing
