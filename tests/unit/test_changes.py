from orthanc_gnuhealth_plugin.changes import deletion, interpret


def entry(seq, change, level, resource_id):
    path = {"Study": "studies", "Series": "series", "Instance": "instances",
            "Patient": "patients"}[level]
    return {"ChangeType": change, "Date": "20261128T152119", "ID": resource_id,
            "Path": f"/{path}/{resource_id}", "ResourceType": level, "Seq": seq}


PARENTS = {"se1": "st1", "se2": "st2", "se3": "st1"}


def parent(series_id):
    return PARENTS.get(series_id)


def test_study_and_series_changes_mark_the_study_dirty_once_in_log_order():
    work = interpret([
        entry(1, "NewInstance", "Instance", "i1"),
        entry(2, "NewSeries", "Series", "se2"),
        entry(3, "NewStudy", "Study", "st1"),
        entry(4, "NewPatient", "Patient", "p1"),
        entry(5, "StableSeries", "Series", "se3"),
        entry(6, "StableStudy", "Study", "st2"),
        entry(7, "StablePatient", "Patient", "p1"),
    ], parent)
    assert work.dirty_studies == ["st2", "st1"]
    assert work.deleted == []


def test_a_study_is_receiving_until_its_last_change_in_the_page_is_stable_study():
    work = interpret([
        entry(1, "NewStudy", "Study", "st1"),
        entry(2, "NewSeries", "Series", "se2"),
        entry(3, "StableSeries", "Series", "se1"),
        entry(4, "StableStudy", "Study", "st1"),
        entry(5, "StableStudy", "Study", "st2"),
        entry(6, "NewSeries", "Series", "se2"),
    ], parent)
    assert work.dirty_studies == ["st1", "st2"]
    assert work.receiving == {"st2"}


def test_new_instances_alone_push_nothing():
    assert interpret([entry(1, "NewInstance", "Instance", "i1")], parent).dirty_studies == []


def test_series_already_deleted_is_skipped():
    work = interpret([entry(1, "NewSeries", "Series", "gone")], parent)
    assert work.dirty_studies == []


def test_parent_of_a_series_is_asked_once():
    asked = []
    interpret([entry(1, "NewSeries", "Series", "se1"),
               entry(2, "StableSeries", "Series", "se1")],
              lambda series_id: asked.append(series_id) or "st1")
    assert asked == ["se1"]


def test_deleted_resources():
    work = interpret([
        entry(1, "Deleted", "Study", "st1"),
        entry(2, "Deleted", "Series", "se1"),
        entry(3, "Deleted", "Instance", "i1"),
        entry(4, "Deleted", "Patient", "p1"),
        entry(5, "Deleted", "Study", "st1"),
    ], parent)
    assert work.deleted == [{"level": "study", "orthanc_id": "st1"},
                            {"level": "series", "orthanc_id": "se1"},
                            {"level": "instance", "orthanc_id": "i1"}]
    assert work.dirty_studies == []


def test_deletion_of_a_patient_is_not_for_gnuhealth():
    assert deletion("Patient", "p1") is None
    assert deletion("Series", "x") == {"level": "series", "orthanc_id": "x"}
