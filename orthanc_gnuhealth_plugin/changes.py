"""Decide, from a page of Orthanc's /changes log, what GNU Health must hear.

Entries look like {"Seq": 9, "ChangeType": "StableSeries",
"ResourceType": "Series", "ID": "...", "Path": "/series/...", "Date": "..."}.
"""
from dataclasses import dataclass, field

# Changes after which a study's record in GNU Health is out of date.
# NewInstance is not here: there are thousands per study and the study is
# pushed again at the next NewSeries / StableSeries / StableStudy anyway.
_STUDY_CHANGES = frozenset({"NewStudy", "StableStudy"})
_SERIES_CHANGES = frozenset({"NewSeries", "StableSeries"})
_DELETABLE = {"Study": "study", "Series": "series", "Instance": "instance"}


@dataclass
class Work:
    dirty_studies: list = field(default_factory=list)  # Orthanc study ids, in log order
    receiving: set = field(default_factory=set)  # dirty, not complete whatever IsStable says
    new: set = field(default_factory=set)  # dirty with a NewStudy change: a first sight
    deleted: list = field(default_factory=list)  # {"level", "orthanc_id"}


def deletion(resource_type, orthanc_id):
    """The record telling GNU Health a resource left the PACS, or None if it
    is not something GNU Health keeps (a patient)."""
    level = _DELETABLE.get(resource_type)
    if level is None:
        return None
    return {"level": level, "orthanc_id": orthanc_id}


def interpret(entries, parent_study_of):
    """Dirty studies (with those still being received) and deletions for a
    page of changes.

    `parent_study_of(series_id)` returns the Orthanc id of a series' study,
    or None when the series is gone (it was deleted since: nothing to push).
    """
    work = Work()
    seen = set()

    def mark(study_id, change):
        if not study_id:
            return
        if study_id not in seen:
            seen.add(study_id)
            work.dirty_studies.append(study_id)
        # Orthanc's IsStable is kept in each node's memory, for the instances
        # that node received: in a cluster, the other nodes see a study still
        # arriving as stable. The shared log knows better: until its last
        # change in the page is StableStudy, the study is still arriving.
        if change == "NewStudy":
            work.new.add(study_id)
        if change == "StableStudy":
            work.receiving.discard(study_id)
        else:
            work.receiving.add(study_id)

    series_parent = {}
    for entry in entries:
        change, resource_id = entry.get("ChangeType"), entry.get("ID")
        if change in _STUDY_CHANGES:
            mark(resource_id, change)
        elif change in _SERIES_CHANGES:
            if resource_id not in series_parent:
                series_parent[resource_id] = parent_study_of(resource_id)
            mark(series_parent[resource_id], change)
        elif change == "Deleted":
            gone = deletion(entry.get("ResourceType"), resource_id)
            if gone and gone not in work.deleted:
                work.deleted.append(gone)
    return work


def first_gap(cursor, entries):
    """The index of the first entry whose number does not follow the one
    before it (the cursor for the first), or None when there is no gap.

    A gap is a change not visible yet (on a PostgreSQL cluster, N+1 can be
    committed before N) or gone for good (with SQLite, a deleted resource's
    changes are deleted with it; a transaction that rolled back)."""
    previous = cursor
    for index, entry in enumerate(entries):
        if entry["Seq"] != previous + 1:
            return index
        previous = entry["Seq"]
    return None
