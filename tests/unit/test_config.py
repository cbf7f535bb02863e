import pytest

from orthanc_gnuhealth_plugin.config import (
    DEFAULT_VIEWER_TEMPLATES, ConfigError, Settings, parse_settings)


def parse(section, **kwargs):
    return parse_settings(section, **kwargs)


def error_of(section, **kwargs):
    with pytest.raises(ConfigError) as caught:
        parse_settings(section, **kwargs)
    message = str(caught.value)
    assert "\n" not in message  # one log line
    return message


def test_defaults_need_only_a_password():
    settings = parse({"TrytonPassword": "s3cret"})
    assert settings == Settings(tryton_password="s3cret")
    assert settings.rpc_url == "http://localhost:8000/gnuhealth/"
    assert settings.cursor_property == 9721
    assert dict(settings.viewer_templates) == dict(DEFAULT_VIEWER_TEMPLATES)
    assert "s3cret" not in repr(settings)


def test_every_key_is_read():
    settings = parse({
        "Enabled": True, "ServerLabel": "pacs-1", "PublicUrl": "https://pacs.example/",
        "TrytonUrl": "https://his.example:8000", "TrytonDatabase": "health",
        "TrytonUser": "sync", "TrytonPassword": "pw", "RpcTimeout": 5, "BatchSize": 50,
        "StudiesPerPush": 5, "PollInterval": 2.5, "RetryMinDelay": 2, "RetryMaxDelay": 60,
        "CursorProperty": 4000, "ViewerTemplates": {"ohif": "{base}/o?s={study_uid}"}})
    assert (settings.server_label, settings.public_url, settings.tryton_database,
            settings.tryton_user, settings.rpc_timeout, settings.batch_size,
            settings.studies_per_push, settings.poll_interval, settings.retry_min_delay,
            settings.retry_max_delay, settings.cursor_property) == (
        "pacs-1", "https://pacs.example/", "health", "sync", 5.0, 50, 5, 2.5, 2.0, 60.0, 4000)
    assert settings.rpc_url == "https://his.example:8000/health/"
    # User templates override per key; the others keep their defaults.
    assert settings.viewer_templates["ohif"] == "{base}/o?s={study_uid}"
    assert settings.viewer_templates["stone"] == DEFAULT_VIEWER_TEMPLATES["stone"]


def test_missing_section_or_password():
    message = error_of(None)
    assert "GnuHealth.TrytonPassword is missing" in message
    assert "TrytonPasswordFile" in message and "Enabled" in message


def test_disabled_needs_no_password():
    assert parse({"Enabled": False}).enabled is False


def test_password_file(tmp_path):
    path = tmp_path / "pw"
    path.write_text("from-file\n")
    assert parse({"TrytonPasswordFile": str(path)}).tryton_password == "from-file"
    assert "cannot read" in error_of({"TrytonPasswordFile": str(tmp_path / "none")})
    path.write_text("  \n")
    assert "is empty" in error_of({"TrytonPasswordFile": str(path)})
    assert "only one of" in error_of({"TrytonPassword": "a", "TrytonPasswordFile": str(path)})


@pytest.mark.parametrize("key, value, expected", [
    ("Enabled", "yes", "GnuHealth.Enabled must be true or false"),
    ("ServerLabel", "", "GnuHealth.ServerLabel must be a non-empty string"),
    ("PublicUrl", "localhost:8042", "GnuHealth.PublicUrl must be an http:// or https:// URL"),
    ("TrytonUrl", 8000, "GnuHealth.TrytonUrl must be a non-empty string"),
    ("RpcTimeout", 0, "GnuHealth.RpcTimeout must be a number of seconds >= 1"),
    ("RpcTimeout", True, "GnuHealth.RpcTimeout must be a number of seconds"),
    ("BatchSize", 2.5, "GnuHealth.BatchSize must be an integer >= 1"),
    ("StudiesPerPush", "20", "GnuHealth.StudiesPerPush must be an integer >= 1"),
    ("CursorProperty", 1000, "GnuHealth.CursorProperty must be an integer >= 1024"),
    ("CursorProperty", 5467, "GnuHealth.CursorProperty = 5467 is already used"),
    ("CursorProperty", 1025, "choose another number >= 1024"),
    ("ViewerTemplates", ["x"], "GnuHealth.ViewerTemplates must be an object"),
    ("ViewerTemplates", {"ohif": ""}, "GnuHealth.ViewerTemplates.ohif must be a URL template"),
    ("ViewerTemplates", {"x": "{base}/{patient}"}, "unknown placeholder(s) ['patient']"),
    ("ViewerTemplates", {"x": "{base"}, "GnuHealth.ViewerTemplates.x: malformed template"),
    ("LocalAccessionIssuers", "HOSP-RIS", "GnuHealth.LocalAccessionIssuers must be a list"),
    ("LocalAccessionIssuers", ["HOSP-RIS", ""],
     "GnuHealth.LocalAccessionIssuers must be a non-empty string"),
])
def test_wrong_values_name_the_key_and_the_fix(key, value, expected):
    assert expected in error_of({"TrytonPassword": "pw", key: value})


def test_local_accession_issuers():
    assert parse({"TrytonPassword": "pw"}).local_accession_issuers == ()
    settings = parse({"TrytonPassword": "pw", "LocalAccessionIssuers": [" HOSP-RIS ", "1.2.3"]})
    assert settings.local_accession_issuers == ("HOSP-RIS", "1.2.3")


def test_delays_must_be_ordered():
    message = error_of({"TrytonPassword": "pw", "RetryMinDelay": 10, "RetryMaxDelay": 5})
    assert "GnuHealth.RetryMaxDelay (5) must be >= RetryMinDelay (10)" in message


def test_unknown_keys_warn_once_each():
    warnings = []
    parse({"TrytonPassword": "pw", "TrytonPasword": "x", "Enable": True}, warn=warnings.append)
    assert len(warnings) == 2
    assert warnings[0].startswith("GnuHealth.TrytonPasword is not a known setting")


def test_section_must_be_an_object():
    assert '"GnuHealth" must be a JSON object' in error_of(["x"])


def _example():
    import json
    import pathlib
    import re
    text = (pathlib.Path(__file__).resolve().parents[2] / "orthanc.json.example").read_text()
    return text, json.loads(re.sub(r"/\*.*?\*/", "", text, flags=re.S))


def test_example_documents_every_key_with_its_default():
    from orthanc_gnuhealth_plugin.config import _KEYS, _UPLOAD_KEYS, _WORKLIST_KEYS
    text, example = _example()
    section = example["GnuHealth"]
    for key in _KEYS:
        assert f'"{key}"' in text, key
    assert set(section["Worklist"]) == set(_WORKLIST_KEYS)
    assert set(section["Uploads"]) == set(_UPLOAD_KEYS)
    defaults = parse_settings(dict(section))
    assert defaults == Settings(tryton_password=section["TrytonPassword"])
    assert "libOrthancPython.so" in " ".join(example["Plugins"])
    assert example["AuthenticationEnabled"] is True and example["RegisteredUsers"]
    assert example["PythonScript"].endswith("launcher/orthanc_gnuhealth.py")
    assert "ModalityWorklists" in text


def test_uploads_settings_and_their_errors():
    from orthanc_gnuhealth_plugin.config import UploadSettings
    settings = parse({"TrytonPassword": "pw", "Uploads": {
        "Interval": 0, "Reconcile": False, "MaxFiles": 5, "MaxTotalMegabytes": 7}})
    assert settings.uploads == UploadSettings(interval=0, reconcile=False, max_files=5,
                                              max_total_megabytes=7)
    assert "GnuHealth.Uploads.MaxFiles must be an integer >= 1" in error_of(
        {"TrytonPassword": "pw", "Uploads": {"MaxFiles": 0}})
    warnings = []
    parse({"TrytonPassword": "pw", "Uploads": {"MaxFile": 3}}, warn=warnings.append)
    assert warnings and warnings[0].startswith("GnuHealth.Uploads.MaxFile is not a known")


def test_ca_bundle_is_checked_at_load(tmp_path):
    https = {"TrytonPassword": "pw", "TrytonUrl": "https://his.example/"}
    assert parse(https).tryton_ca_bundle is None  # the system's trust store
    message = error_of({**https, "TrytonCaBundle": str(tmp_path / "none.pem")})
    assert message.startswith("GnuHealth.TrytonCaBundle: cannot load") and "none.pem" in message
    (tmp_path / "junk.pem").write_text("not a certificate")
    assert "GnuHealth.TrytonCaBundle" in error_of({**https,
                                                   "TrytonCaBundle": str(tmp_path / "junk.pem")})
    message = error_of({"TrytonPassword": "pw", "TrytonCaBundle": str(tmp_path / "junk.pem")})
    assert "TrytonCaBundle is set but GnuHealth.TrytonUrl" in message and "https://" in message


def test_a_malformed_password_is_not_shown():
    for value in (["s3cret-value"], {"value": "s3cret-value"}, 12345678):
        message = error_of({"TrytonPassword": value})
        assert message.startswith("GnuHealth.TrytonPassword must be a non-empty string")
        assert "s3cret-value" not in message and "12345678" not in message
