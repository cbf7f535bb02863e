from orthanc_gnuhealth_plugin.config import DEFAULT_VIEWER_TEMPLATES
from orthanc_gnuhealth_plugin.viewers import installed_viewers, study_viewers, viewer_urls

from fakes import FakeOrthanc

UID = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"
STUDY = "8a8cf898-ca27c490-d0c7058c-929d0581-2bbf104d"
SERIES = "93034833-163e42c3-bc9a428b-194620cf-2c5799e5"


def test_default_viewer_urls_are_exact():
    urls = viewer_urls(DEFAULT_VIEWER_TEMPLATES, "https://pacs.example:8042/", UID, STUDY, SERIES)
    assert urls == {
        "ohif": f"https://pacs.example:8042/ohif/viewer?StudyInstanceUIDs={UID}",
        "stone": f"https://pacs.example:8042/stone-webviewer/index.html?study={UID}",
        "explorer": f"https://pacs.example:8042/app/explorer.html#study?uuid={STUDY}",
        "webviewer": f"https://pacs.example:8042/web-viewer/app/viewer.html?series={SERIES}",
        "oe2": f"https://pacs.example:8042/ui/app/#/filtered-studies?StudyInstanceUID={UID}"
               f"&expand=series",
    }


def test_series_viewer_is_left_out_without_series():
    urls = viewer_urls(DEFAULT_VIEWER_TEMPLATES, "http://pacs", UID, STUDY)
    assert sorted(urls) == ["explorer", "oe2", "ohif", "stone"]


def test_study_viewers_open_the_lowest_numbered_series():
    orthanc = FakeOrthanc(plugins=["web-viewer", "ohif"])
    study = orthanc.store("1.2.3", "1.2.3.9", "a", series_tags={"SeriesNumber": "9"})
    orthanc.store("1.2.3", "1.2.3.2", "b", series_tags={"SeriesNumber": " 2"})
    second = orthanc.studies[study]["Series"][1]
    urls = study_viewers(orthanc.get, DEFAULT_VIEWER_TEMPLATES, "http://pacs", study)
    assert urls["webviewer"] == f"http://pacs/web-viewer/app/viewer.html?series={second}"
    assert urls["ohif"] == "http://pacs/ohif/viewer?StudyInstanceUIDs=1.2.3"


def test_study_viewers_only_link_to_installed_viewers():
    """Orthanc Explorer always (it is part of Orthanc); the others only when
    GET /plugins lists their plugin. Plugin names as Orthanc reports them."""
    cases = [
        ([], {"explorer"}),
        (["python", "dicom-web"], {"explorer"}),
        (["web-viewer"], {"explorer", "webviewer"}),
        (["stone-webviewer", "ohif", "orthanc-explorer-2"], {"explorer", "stone", "ohif", "oe2"}),
        (["web-viewer", "stone-webviewer", "ohif", "orthanc-explorer-2"],
         {"explorer", "webviewer", "stone", "ohif", "oe2"}),
    ]
    for plugins, expected in cases:
        orthanc = FakeOrthanc(plugins=plugins)
        study = orthanc.store("1.2.3", "1.2.3.1", "a")
        urls = study_viewers(orthanc.get, DEFAULT_VIEWER_TEMPLATES, "http://pacs", study)
        assert set(urls) == set(DEFAULT_VIEWER_TEMPLATES), plugins  # every name, ...
        assert {name for name, url in urls.items() if url} == expected, plugins  # ... a URL if served
        assert urls["explorer"] == f"http://pacs/app/explorer.html#study?uuid={study}"


def test_study_viewers_leave_out_a_custom_template_orthanc_does_not_serve():
    orthanc = FakeOrthanc(plugins=["web-viewer"])
    study = orthanc.store("1.2.3", "1.2.3.1", "a")
    templates = {**DEFAULT_VIEWER_TEMPLATES, "elsewhere": "https://viewer.example/{study_uid}"}
    urls = study_viewers(orthanc.get, templates, "http://pacs", study)
    assert urls["elsewhere"] is None
    assert {name for name, url in urls.items() if url} == {"explorer", "webviewer"}


def test_unknown_study_has_no_viewers():
    assert study_viewers(FakeOrthanc().get, DEFAULT_VIEWER_TEMPLATES, "http://p", STUDY) is None


def test_installed_viewers_from_orthanc_plugins():
    assert installed_viewers(["explorer.js", "python", "web-viewer"]) == ["explorer", "webviewer"]
    assert installed_viewers(None) == ["explorer"]
    assert installed_viewers(["stone-webviewer", "ohif"]) == ["explorer", "ohif", "stone"]


def test_ohif_is_installed_when_serve_folders_serves_its_index(tmp_path):
    """OHIF built by scripts/install.sh is served by ServeFolders: installed
    only when that plugin is loaded and its /ohif folder holds index.html."""
    assert installed_viewers(["serve-folders"], tmp_path) == ["explorer"]  # empty folder
    (tmp_path / "index.html").write_text("<html></html>")
    assert installed_viewers(["serve-folders"], tmp_path) == ["explorer", "ohif"]
    assert installed_viewers(["python"], tmp_path) == ["explorer"]  # ServeFolders not loaded
    assert installed_viewers(["serve-folders"], None) == ["explorer"]  # no "/ohif" folder
    assert installed_viewers(["serve-folders"], tmp_path / "missing") == ["explorer"]
    orthanc = FakeOrthanc(plugins=["serve-folders", "web-viewer"])
    study = orthanc.store("1.2.3", "1.2.3.1", "a")
    urls = study_viewers(orthanc.get, DEFAULT_VIEWER_TEMPLATES, "http://pacs", study, tmp_path)
    assert urls["ohif"] == "http://pacs/ohif/viewer?StudyInstanceUIDs=1.2.3"
    assert next(iter(urls)) == "ohif"  # the first, default link
