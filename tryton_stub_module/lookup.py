# This file is part of orthanc-gnuhealth.  The COPYRIGHT file at the top level
# of this repository contains the full copyright notices and license terms.
"""Finding the records a study's codes name: its PatientID, accession
number or StudyInstanceUID

The matching rules (link.py, link_imaging.py) and matching again
(link_again.py) name the fields a code is compared with as paths, such as
'identifiers.code'; these two functions read and search them the same way.
"""

from collections import defaultdict

from trytond.tools import grouped_slice


def values_at(records, paths):
    "Return the values at the end of the dotted paths from records, but None"
    values = set()
    for path in paths:
        found = list(records)
        for name in path.split('.'):
            found = [getattr(r, name) for r in found if r is not None]
            # A One2Many gives a tuple of records, any other field one value.
            found = [v for f in found
                for v in (f if isinstance(f, tuple) else [f])]
        values.update(found)
    values.discard(None)
    return values


def records_by_value(Model, keys, paths):
    """Return the records of Model whose value at one of paths is each key

    By key; each list in the order of the record ids, a record once.
    With a handful of queries for any number of keys, of any length.
    """
    keys = set(keys)
    found = defaultdict(list)
    for sub_keys in grouped_slice(sorted(keys)):
        sub_keys = list(sub_keys)
        for record in Model.search(
                ['OR'] + [(p, 'in', sub_keys) for p in paths],
                order=[('id', 'ASC')]):
            for key in values_at([record], paths) & keys:
                found[key].append(record)
    return found
