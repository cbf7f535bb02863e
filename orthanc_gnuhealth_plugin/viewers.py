"""Viewer links for one study, from the configured URL templates."""
from pathlib import Path

from . import mapping

# Where Orthanc's ServeFolders plugin serves OHIF (scripts/install.sh builds
# it for this path; the OHIF template's links start with it).
OHIF_PATH = "/ohif"


def viewer_urls(templates, public_url, study_uid, study_id, first_series_id=None):
    """Return {viewer name: URL} for a study.

    A template that needs a series (the Orthanc Web Viewer opens one series)
    is left out when the study has no series yet.
    """
    fields = {
        "base": public_url.rstrip("/"),
        "study_uid": study_uid or "",
        "study_id": study_id,
        "series_id": first_series_id,
    }
    urls = {}
    for name, template in templates.items():
        if "{series_id}" in template and not first_series_id:
            continue
        urls[name] = template.format(**fields)
    return urls


# Orthanc plugin name (GET /plugins) -> viewer name in ViewerTemplates.
_VIEWER_PLUGINS = {
    "web-viewer": "webviewer",
    "stone-webviewer": "stone",
    "ohif": "ohif",
    "orthanc-explorer-2": "oe2",
}


def installed_viewers(plugin_names, ohif_folder=None):
    """Viewers this Orthanc serves: Orthanc Explorer (core) plus plugins,
    plus OHIF when the ServeFolders plugin is loaded and `ohif_folder` (the
    folder it serves at OHIF_PATH, see ohif_index) holds the application."""
    plugin_names = plugin_names or []
    found = {"explorer"}
    found.update(_VIEWER_PLUGINS[name] for name in plugin_names if name in _VIEWER_PLUGINS)
    if "serve-folders" in plugin_names and ohif_index(ohif_folder):
        found.add("ohif")
    return sorted(found)


def ohif_index(ohif_folder):
    "The index.html of OHIF in the folder ServeFolders serves at OHIF_PATH, or None."
    index = Path(ohif_folder) / "index.html" if ohif_folder else None
    return index if index and index.is_file() else None


def study_viewers(orthanc_get, templates, public_url, study_id, ohif_folder=None):
    """{viewer: URL or None} for an Orthanc study id, or None if Orthanc does
    not know the study. Every configured viewer is named (scripts may rely on
    the names), but only those this Orthanc serves (installed_viewers) get a
    URL: a clinician never gets a link that leads nowhere. The series-level
    viewer opens the lowest-numbered series."""
    study = orthanc_get(f"/studies/{study_id}")
    if study is None:
        return None
    installed = installed_viewers(orthanc_get("/plugins"), ohif_folder)
    series = orthanc_get(f"/studies/{study_id}/series") or []
    first = min(series, key=_series_order, default=None)
    urls = viewer_urls({name: t for name, t in templates.items() if name in installed},
                       public_url,
                       mapping.uid((study.get("MainDicomTags") or {}).get("StudyInstanceUID")),
                       study_id, first and first.get("ID"))
    return {name: urls.get(name) for name in templates}


def _series_order(series):
    tags = series.get("MainDicomTags") or {}
    number = mapping.integer(tags.get("SeriesNumber"))
    return (number is None, number or 0, mapping.uid(tags.get("SeriesInstanceUID")) or "")
