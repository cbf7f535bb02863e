"""The "GnuHealth" section of Orthanc's configuration, checked once at load.

Every problem is reported as one line naming the key and the fix, because
the only place a hospital administrator sees it is Orthanc's log.
"""
import string
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Mapping, Optional
from urllib.parse import urlparse

SECTION = "GnuHealth"

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
    rpc_timeout: float = 30.0
    batch_size: int = 100
    studies_per_push: int = 20
    poll_interval: float = 10.0
    retry_min_delay: float = 1.0
    retry_max_delay: float = 300.0
    cursor_property: int = 9721
    state_property: int = 9722
    reconcile: bool = True
    viewer_templates: Mapping[str, str] = field(
        default_factory=lambda: DEFAULT_VIEWER_TEMPLATES, hash=False)

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
            f'plugins; choose another number >= {MIN_USER_PROPERTY} (default {9721 if key == "CursorProperty" else 9722})')
    return number


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
    "TrytonPassword": ("tryton_password", _parse_text),
    "TrytonPasswordFile": (None, _parse_text),
    "RpcTimeout": ("rpc_timeout", _number_parser(float, 1)),
    "BatchSize": ("batch_size", _number_parser(int, 1)),
    "StudiesPerPush": ("studies_per_push", _number_parser(int, 1)),
    "PollInterval": ("poll_interval", _number_parser(float, 0.1)),
    "RetryMinDelay": ("retry_min_delay", _number_parser(float, 0.1)),
    "RetryMaxDelay": ("retry_max_delay", _number_parser(float, 0.1)),
    "CursorProperty": ("cursor_property", _parse_cursor_property),
    "StateProperty": ("state_property", _parse_cursor_property),
    "Reconcile": ("reconcile", _parse_bool),
    "ViewerTemplates": ("viewer_templates", _parse_templates),
}


def parse_settings(section: Optional[dict], warn=lambda line: None,
                   read_file=None) -> Settings:
    """Build Settings from the "GnuHealth" section (None if absent).

    `warn` receives one line per unknown key (usually a typo); `read_file`
    reads TrytonPasswordFile (injected so tests need no files).
    """
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise ConfigError(f'"{SECTION}" must be a JSON object, not {section!r}')
    for key in section:
        if key not in _KEYS:
            warn(f'{SECTION}.{key} is not a known setting and is ignored '
                 f'(known: {", ".join(_KEYS)})')
    values = {}
    for key, (attribute, parse) in _KEYS.items():
        if key in section and attribute:
            values[attribute] = parse(key, section[key])
    values.setdefault("tryton_public_url", values.get("tryton_url", Settings.tryton_url))
    settings = Settings(**values)
    if not settings.enabled:
        return settings
    password = _password(section, read_file or _read_text_file)
    _check_delays(settings)
    _check_properties(settings)
    return replace(settings, tryton_password=password)


def _password(section, read_file):
    if "TrytonPassword" in section and "TrytonPasswordFile" in section:
        raise ConfigError(
            f'{SECTION}: set only one of TrytonPassword and TrytonPasswordFile')
    if "TrytonPassword" in section:
        return _parse_text("TrytonPassword", section["TrytonPassword"])
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
            f'({settings.cursor_property}); default 9722')


def _check_delays(settings):
    if settings.retry_max_delay < settings.retry_min_delay:
        raise ConfigError(
            f'{SECTION}.RetryMaxDelay ({settings.retry_max_delay:g}) must be >= '
            f'RetryMinDelay ({settings.retry_min_delay:g})')


def _read_text_file(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()
