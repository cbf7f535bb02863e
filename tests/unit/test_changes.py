from orthanc_gnuhealth_plugin.changes import deletion, interpret


def entry(seq, change, level, resource_id):
    path = {"Study": "studies", "Series": "series", "Instance": "instances",
            "Patient": "patients"}[level]
    return {"ChangeType": change, "Date": "20261128T152119", "ID": resource_id,
            "Path": f"/{path}/{resource_id}", "ResourceType": level, "Seq": seq}


def log(table):
    """Return Orthanc's change log from a table of lines
    "ChangeType ResourceType ID", their Seq counted from 1"""
    return [entry(seq, *line.split())
            for seq, line in enumerate(table.strip().splitlines(), 1)]


PARENTS = {"se1": "st1", "se2": "st2", "se3": "st1"}


def parent(series_id):
    return PARENTS.get(series_id)


def test_study_and_series_changes_mark_the_study_dirty_once_in_log_order():
    work = interpret(log("""
        NewInstance   Instance i1
        NewSeries     Series   se2
        NewStudy      Study    st1
        NewPatient    Patient  p1
        StableSeries  Series   se3
        StableStudy   Study    st2
        StablePatient Patient  p1
    """), parent)
    assert work.dirty_studies == ["st2", "st1"]
    assert work.deleted == []


def test_a_study_is_receiving_until_its_last_change_in_the_page_is_stable_study():
    work = interpret(log("""
        NewStudy     Study  st1
        NewSeries    Series se2
        StableSeries Series se1
        StableStudy  Study  st1
        StableStudy  Study  st2
        NewSeries    Series se2
    """), parent)
    assert work.dirty_studies == ["st1", "st2"]
    assert work.receiving == {"st2"}


def test_new_instances_alone_push_nothing():
    assert interpret(log("NewInstance Instance i1"), parent).dirty_studies == []


def test_series_already_deleted_is_skipped():
    work = interpret(log("NewSeries Series gone"), parent)
    assert work.dirty_studies == []


def test_parent_of_a_series_is_asked_once():
    asked = []
    interpret(log("""
        NewSeries    Series se1
        StableSeries Series se1
    """), lambda series_id: asked.append(series_id) or "st1")
    assert asked == ["se1"]


def test_deleted_resources():
    work = interpret(log("""
        Deleted Study    st1
        Deleted Series   se1
        Deleted Instance i1
        Deleted Patient  p1
        Deleted Study    st1
    """), parent)
    assert work.deleted == [{"level": "study", "orthanc_id": "st1"},
                            {"level": "series", "orthanc_id": "se1"},
                            {"level": "instance", "orthanc_id": "i1"}]
    assert work.dirty_studies == []


def test_deletion_of_a_patient_is_not_for_gnuhealth():
    assert deletion("Patient", "p1") is None
    assert deletion("Series", "x") == {"level": "series", "orthanc_id": "x"}
