"""The "GnuHealth" section of Orthanc's configuration, checked once at load.

Every problem is reported as one line naming the key and the fix, because
the only place a hospital administrator sees it is Orthanc's log.
"""
import ssl
import string
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Mapping, Optional, Tuple
from urllib.parse import urlparse

SECTION = "GnuHealth"

# GNU Health's imaging test type codes that are not DICOM modalities.
DEFAULT_MODALITIES = MappingProxyType({"XR": "DX"})

DEFAULT_VIEWER_TEMPLATES = MappingProxyType({
    "ohif": "{base}/ohif/viewer?StudyInstanceUIDs={study_uid}",
    "stone": "{base}/stone-webviewer/index.html?study={study_uid}",
    "explorer": "{base}/app/explorer.html#study?uuid={study_id}",
    "webviewer": "{base}/web-viewer/app/viewer.html?series={series_id}",
    # Orthanc Explorer 2 (needs Orthanc >= 1.11; not packaged for bookworm).
    "oe2": "{base}/ui/app/#/filtered-studies?StudyInstanceUID={study_uid}&expand=series",
})

# Placeholders a viewer template may use (see viewers.py).
TEMPLATE_FIELDS = frozenset({"base", "study_uid", "study_id", "series_id"})

# Global properties already used by Orthanc itself or by its official
# plugins: writing our cursor there would corrupt theirs.
RESERVED_PROPERTIES = frozenset({1025, 5467, 5468, 5500})
MIN_USER_PROPERTY = 1024


@dataclass(frozen=True)
class WorklistSettings:
    enabled: bool = True
    refresh_interval: float = 10.0
    max_staleness: float = 60.0
    # GNU Health test type code -> DICOM Modality (others are used as is).
    modalities: Mapping[str, str] = field(
        default_factory=lambda: DEFAULT_MODALITIES, hash=False)
    # DICOM Modality -> ScheduledStationAETitle, unless the imaging test
    # names its own (health_imaging_worklist's AETitle).
    station_aets: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({}), hash=False)
    # Calling AE titles allowed to query; empty: every one Orthanc accepts.
    allowed_calling_aets: Tuple[str, ...] = ()
    order_states: Tuple[str, ...] = ("requested",)


@dataclass(frozen=True)
class UploadSettings:
    """Outside images uploaded in GNU Health (upload.py, uploads.py)."""
    # Seconds between two looks for pending uploads; 0: this node imports none.
    interval: float = 10.0
    # false: store the files as they are (they are already this hospital's).
    reconcile: bool = True
    max_files: int = 10000
    # Limits of one upload once unpacked (in the temporary folder: TMPDIR).
    max_total_megabytes: int = 4096


class ConfigError(ValueError):
    """A wrong or missing configuration value; the message is one log line."""


@dataclass(frozen=True)
class Settings:
    enabled: bool = True
    server_label: str = "orthanc"
    public_url: str = "http://localhost:8042"
    tryton_url: str = "http://localhost:8000/"
    # trytond as users' browsers reach it (SAO links); default: tryton_url.
    tryton_public_url: str = "http://localhost:8000/"
    tryton_database: str = "gnuhealth"
    tryton_user: str = "orthanc-sync"
    tryton_password: str = field(default="", repr=False)
    # PEM file of the CA(s) that signed trytond's certificate (https only);
    # None: the system's trust store. Certificates are always verified.
    tryton_ca_bundle: Optional[str] = None
    rpc_timeout: float = 30.0
    batch_size: int = 100
    studies_per_push: int = 20
    poll_interval: float = 10.0
    retry_min_delay: float = 1.0
    retry_max_delay: float = 300.0
    cursor_property: int = 9721
    state_property: int = 9722
    # This hospital's issuers of accession numbers (IssuerOfAccessionNumberSequence).
    local_accession_issuers: Tuple[str, ...] = ()
    # The continuous audit (audit.py): seconds between two pages (0: off)
    # and studies per page. 100 every 10 s: a full pass a day up to 432,000 studies;
    # its measured cost is in docs/operations.md ("The audit").
    audit_interval: float = 10.0
    audit_page_size: int = 100
    # Seconds the cursor waits at a gap in the change numbers.
    # 3 s: long enough for a late commit, short enough that a gap that never
    # fills (a deletion, a retried transaction) costs little freshness.
    change_gap_wait: float = 3.0
    viewer_templates: Mapping[str, str] = field(
        default_factory=lambda: DEFAULT_VIEWER_TEMPLATES, hash=False)
    worklist: WorklistSettings = field(default_factory=WorklistSettings)
    uploads: UploadSettings = field(default_factory=UploadSettings)

    @property
    def rpc_url(self):
        """Tryton's XML-RPC URL for the database, as proteus expects it."""
        return self.tryton_url.rstrip("/") + "/" + self.tryton_database + "/"


def _parse_bool(key, value):
    if isinstance(value, bool):
        return value
    raise ConfigError(f'{SECTION}.{key} must be true or false, not {value!r}')


def _parse_text(key, value):
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise ConfigError(f'{SECTION}.{key} must be a non-empty string, not {value!r}')


def _parse_secret(key, value):
    """A password: like _parse_text, but the error never shows the value
    (Orthanc's log is read by more people than the password is for)."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise ConfigError(f'{SECTION}.{key} must be a non-empty string, not a '
                      f'{type(value).__name__}')


def _parse_optional_text(key, value):
    """null (the default) or a non-empty string."""
    return None if value is None else _parse_text(key, value)


def _parse_ae_title(key, value):
    # AE titles: 1 to 16 characters, no backslash nor control character.
    text = value.strip() if isinstance(value, str) else ""
    if not text or len(text) > 16 or "\\" in text or any(ord(c) < 32 for c in text):
        raise ConfigError(
            f'{SECTION}.{key}: {value!r} is not an AE title (1 to 16 characters)')
    return text


def _parse_modality(key, value):
    text = value.strip().upper() if isinstance(value, str) else ""
    if text.isalnum() and len(text) <= 16:
        return text
    raise ConfigError(
        f'{SECTION}.{key} must be a DICOM modality such as "CT" or "DX", not {value!r}')


def _code_map_parser(parse_target, defaults=MappingProxyType({})):
    def parse(key, value):
        if not isinstance(value, dict):
            raise ConfigError(
                f'{SECTION}.{key} must be an object such as {{"CT": "CT_ROOM_1"}}, '
                f'not {value!r}')
        return MappingProxyType({**defaults, **{
            str(code).strip(): parse_target(f"{key}.{code}", target)
            for code, target in value.items()}})
    return parse


def _list_parser(parse_item, minimum=0):
    def parse(key, value):
        if not isinstance(value, list) or len(value) < minimum:
            what = f"a list of at least {minimum} item(s)" if minimum else "a list"
            raise ConfigError(f'{SECTION}.{key} must be {what}, not {value!r}')
        return tuple(parse_item(key, item) for item in value)
    return parse


def _parse_http_url(key, value):
    text = _parse_text(key, value)
    parsed = urlparse(text)
    if parsed.scheme in ("http", "https") and parsed.netloc:
        return text
    raise ConfigError(
        f'{SECTION}.{key} must be an http:// or https:// URL such as '
        f'"http://localhost:8042", not {value!r}')


def _number_parser(kind, minimum):
    def parse(key, value):
        # JSON true/false are ints in Python: refuse them explicitly.
        ok_types = (int,) if kind is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, ok_types) or value < minimum:
            what = "an integer" if kind is int else "a number of seconds"
            raise ConfigError(
                f'{SECTION}.{key} must be {what} >= {minimum}, not {value!r}')
        return kind(value)
    return parse


def _parse_cursor_property(key, value):
    number = _number_parser(int, MIN_USER_PROPERTY)(key, value)
    if number in RESERVED_PROPERTIES:
        raise ConfigError(
            f'{SECTION}.{key} = {number} is already used by Orthanc or one of its '
            f'plugins; choose another number >= {MIN_USER_PROPERTY} (default '
            f'{_PROPERTY_DEFAULTS[key]})')
    return number


_PROPERTY_DEFAULTS = {"CursorProperty": Settings.cursor_property,
                      "StateProperty": Settings.state_property}


def _parse_templates(key, value):
    if not isinstance(value, dict):
        raise ConfigError(
            f'{SECTION}.{key} must be an object mapping a viewer name to a URL '
            f'template, not {value!r}')
    templates = dict(DEFAULT_VIEWER_TEMPLATES)
    for name, template in value.items():
        if not isinstance(template, str) or not template.strip():
            raise ConfigError(
                f'{SECTION}.{key}.{name} must be a URL template string such as '
                f'"{DEFAULT_VIEWER_TEMPLATES["ohif"]}", not {template!r}')
        _check_placeholders(f"{key}.{name}", template)
        templates[name] = template
    return MappingProxyType(templates)


def _check_placeholders(key, template):
    try:
        used = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as error:
        raise ConfigError(f'{SECTION}.{key}: malformed template {template!r} ({error})')
    unknown = used - TEMPLATE_FIELDS
    if unknown:
        raise ConfigError(
            f'{SECTION}.{key} uses unknown placeholder(s) {sorted(unknown)}; '
            f'use only {{base}}, {{study_uid}}, {{study_id}}, {{series_id}}')


# Orthanc-style key -> (Settings attribute, parser). Order is the order
# errors are checked in, which is also the order of orthanc.json.example.
_KEYS = {
    "Enabled": ("enabled", _parse_bool),
    "ServerLabel": ("server_label", _parse_text),
    "PublicUrl": ("public_url", _parse_http_url),
    "TrytonUrl": ("tryton_url", _parse_http_url),
    "TrytonPublicUrl": ("tryton_public_url", _parse_http_url),
    "TrytonDatabase": ("tryton_database", _parse_text),
    "TrytonUser": ("tryton_user", _parse_text),
    "TrytonPassword": ("tryton_password", _parse_secret),
    "TrytonPasswordFile": (None, _parse_text),
    "TrytonCaBundle": ("tryton_ca_bundle", _parse_optional_text),
    "RpcTimeout": ("rpc_timeout", _number_parser(float, 1)),
    "BatchSize": ("batch_size", _number_parser(int, 1)),
    "StudiesPerPush": ("studies_per_push", _number_parser(int, 1)),
    "PollInterval": ("poll_interval", _number_parser(float, 0.1)),
    "RetryMinDelay": ("retry_min_delay", _number_parser(float, 0.1)),
    "RetryMaxDelay": ("retry_max_delay", _number_parser(float, 0.1)),
    "CursorProperty": ("cursor_property", _parse_cursor_property),
    "StateProperty": ("state_property", _parse_cursor_property),
    "LocalAccessionIssuers": ("local_accession_issuers", _list_parser(_parse_text)),
    "AuditInterval": ("audit_interval", _number_parser(float, 0)),
    "AuditPageSize": ("audit_page_size", _number_parser(int, 1)),
    "ChangeGapWait": ("change_gap_wait", _number_parser(float, 0)),
    "ViewerTemplates": ("viewer_templates", _parse_templates),
    # Objects of their own: _WORKLIST_KEYS, _UPLOAD_KEYS.
    "Worklist": (None, None),
    "Uploads": (None, None),
}

# The "Worklist" object, keys as above (documented in orthanc.json.example).
_WORKLIST_KEYS = {
    "Enabled": ("enabled", _parse_bool),
    "RefreshInterval": ("refresh_interval", _number_parser(float, 0.1)),
    "MaxStaleness": ("max_staleness", _number_parser(float, 0.1)),
    "Modalities": ("modalities", _code_map_parser(_parse_modality, DEFAULT_MODALITIES)),
    "StationAETitles": ("station_aets", _code_map_parser(_parse_ae_title)),
    "AllowedCallingAETs": ("allowed_calling_aets", _list_parser(_parse_ae_title)),
    "OrderStates": ("order_states", _list_parser(_parse_text, minimum=1)),
}

# The "Uploads" object, keys as above (documented in orthanc.json.example).
_UPLOAD_KEYS = {
    "Interval": ("interval", _number_parser(float, 0)),
    "Reconcile": ("reconcile", _parse_bool),
    "MaxFiles": ("max_files", _number_parser(int, 1)),
    "MaxTotalMegabytes": ("max_total_megabytes", _number_parser(int, 1)),
}


def parse_settings(section: Optional[dict], warn=lambda line: None,
                   read_file=None) -> Settings:
    """Build Settings from the "GnuHealth" section (None if absent).

    `warn` receives one line per unknown key (usually a typo); `read_file`
    reads TrytonPasswordFile (injected so tests need no files).
    """
    section = {} if section is None else section
    values = _parse_object("", section, _KEYS, warn)
    values["worklist"] = _parse_worklist(section.get("Worklist"), warn)
    values["uploads"] = UploadSettings(**_parse_object(
        "Uploads.", section.get("Uploads"), _UPLOAD_KEYS, warn))
    values.setdefault("tryton_public_url", values.get("tryton_url", Settings.tryton_url))
    settings = Settings(**values)
    if not settings.enabled:
        return settings
    password = _password(section, read_file or _read_text_file)
    _check_delays(settings)
    _check_properties(settings)
    _check_ca_bundle(settings)
    return replace(settings, tryton_password=password)


def _parse_object(prefix, section, keys, warn):
    """The attributes set by `section` (None if absent), checked by `keys`."""
    where = f"{SECTION}.{prefix}".rstrip(".")
    if section is None:  # an absent object: every default
        return {}
    if not isinstance(section, dict):
        raise ConfigError(f'"{where}" must be a JSON object, not a {type(section).__name__}')
    for key in section:
        if key not in keys:
            warn(f'{where}.{key} is not a known setting and is ignored '
                 f'(known: {", ".join(keys)})')
    return {attribute: parse(prefix + key, section[key])
            for key, (attribute, parse) in keys.items()
            if key in section and attribute}


def _parse_worklist(section, warn):
    worklist = WorklistSettings(**_parse_object("Worklist.", section, _WORKLIST_KEYS, warn))
    if worklist.max_staleness < worklist.refresh_interval:
        raise ConfigError(
            f'{SECTION}.Worklist.MaxStaleness ({worklist.max_staleness:g}) must be >= '
            f'RefreshInterval ({worklist.refresh_interval:g})')
    return worklist


def _password(section, read_file):
    if "TrytonPassword" in section and "TrytonPasswordFile" in section:
        raise ConfigError(
            f'{SECTION}: set only one of TrytonPassword and TrytonPasswordFile')
    if "TrytonPassword" in section:
        return _parse_secret("TrytonPassword", section["TrytonPassword"])
    if "TrytonPasswordFile" in section:
        path = _parse_text("TrytonPasswordFile", section["TrytonPasswordFile"])
        try:
            password = read_file(path).strip()
        except OSError as error:
            raise ConfigError(
                f'{SECTION}.TrytonPasswordFile: cannot read {path!r} ({error.strerror or error}); '
                f'make it readable by the Orthanc user')
        if not password:
            raise ConfigError(f'{SECTION}.TrytonPasswordFile: {path!r} is empty; '
                              f'write the password of TrytonUser in it')
        return password
    raise ConfigError(
        f'{SECTION}.TrytonPassword is missing: set TrytonPassword (or '
        f'TrytonPasswordFile) to the Tryton password of TrytonUser, or set '
        f'{SECTION}.Enabled to false')


def _check_properties(settings):
    if settings.state_property == settings.cursor_property:
        raise ConfigError(
            f'{SECTION}.StateProperty must differ from CursorProperty '
            f'({settings.cursor_property}); default {Settings.state_property}')


def tls_context(settings):
    """The TLS context for https:// to trytond: verifying, with the CA
    bundle of TrytonCaBundle if set (raises OSError or ssl.SSLError)."""
    return ssl.create_default_context(cafile=settings.tryton_ca_bundle)


def _check_ca_bundle(settings):
    path = settings.tryton_ca_bundle
    if path is None:
        return
    if not settings.tryton_url.startswith("https:"):
        raise ConfigError(
            f'{SECTION}.TrytonCaBundle is set but {SECTION}.TrytonUrl '
            f'({settings.tryton_url}) is not https://: use https:// or remove '
            f'TrytonCaBundle')
    try:
        tls_context(settings)
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(
            f'{SECTION}.TrytonCaBundle: cannot load {path!r} as PEM CA certificates '
            f'({getattr(error, "strerror", None) or error}); give the PEM file of the CA '
            f'that signed trytond\'s certificate, readable by the Orthanc user')


def _check_delays(settings):
    if settings.retry_max_delay < settings.retry_min_delay:
        raise ConfigError(
            f'{SECTION}.RetryMaxDelay ({settings.retry_max_delay:g}) must be >= '
            f'RetryMinDelay ({settings.retry_min_delay:g})')


def _read_text_file(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()
