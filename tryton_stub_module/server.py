# This file is part of orthanc-gnuhealth.  The COPYRIGHT file at the top level
# of this repository contains the full copyright notices and license terms.
import datetime
from urllib.parse import quote

from trytond.i18n import gettext
from trytond.model import ModelSQL, ModelView, Unique, fields

from .snapshot import SnapshotReader

VIEWERS = ['ohif', 'stone', 'explorer', 'webviewer', 'oe2']
DEFAULT_TEMPLATES = {
    'ohif': '{base}/ohif/viewer?StudyInstanceUIDs={study_uid}',
    'stone': '{base}/stone-webviewer/index.html?study={study_uid}',
    'explorer': '{base}/app/explorer.html#study?uuid={study_id}',
    'webviewer': '{base}/web-viewer/app/viewer.html?series={series_id}',
    'oe2': '{base}/ui/app/#/filtered-studies?StudyInstanceUID={study_uid}&expand=series',
    }
TEMPLATE_HELP = (
    "\nPlaceholders: {base} (public URL), {study_uid} (StudyInstanceUID), "
    "{study_id} (Orthanc study id), {series_id} (Orthanc series id).")


def viewer_template(string, what):
    """Return the field of the URL template of what in a viewer, whose
    placeholders viewer_url fills"""
    return fields.Char(string, help="The URL of %s." % what + TEMPLATE_HELP)


def viewer_link(string, what, viewer, getter='get_viewer_url'):
    """Return the field of the URL that opens what (a study or series) in
    viewer, empty when the server cannot show it"""
    return fields.Function(fields.Char(
            string, help="Open %s in %s." % (what, viewer)), getter)


class Server(ModelSQL, ModelView):
    "Radiology PACS Server"
    __name__ = 'gnuhealth.radiology.server'
    _rec_name = 'label'

    label = fields.Char(
        "Label", required=True,
        help="The name under which the Orthanc plugin pushes its studies.")
    public_url = fields.Char(
        "Public URL",
        help="The base URL of Orthanc as the clinicians' browsers reach it.")
    last_contact = fields.DateTime(
        "Last Contact", readonly=True,
        help="When the Orthanc plugin last pushed to this server.")
    ohif_template = viewer_template(
        "OHIF Viewer Template", "a study in the OHIF viewer")
    stone_template = viewer_template(
        "Stone Viewer Template", "a study in the Stone Web Viewer")
    explorer_template = viewer_template(
        "Orthanc Explorer Template", "a study in Orthanc Explorer")
    webviewer_template = viewer_template(
        "Orthanc Web Viewer Template", "a series in the Orthanc Web Viewer")
    oe2_template = viewer_template(
        "Orthanc Explorer 2 Template", "a study in Orthanc Explorer 2")
    viewers = fields.Char(
        "Installed Viewers", readonly=True,
        help="The viewers installed on this Orthanc, "
        "as last reported by its plugin.")
    accession_issuers = fields.Char(
        "Local Accession Issuers", readonly=True,
        help="The issuers of this hospital's accession numbers, separated by "
        "spaces, as the plugin's GnuHealth.LocalAccessionIssuers says. "
        "The accession of a study from another issuer is not an order "
        "code here. Empty: every accession may be an order code.")
    studies = fields.One2Many(
        'gnuhealth.radiology.study', 'server', "Studies", readonly=True,
        help="The studies pushed by this server.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints = [
            ('label_unique', Unique(t, t.label),
                'health_radiology.msg_server_label_unique'),
            ]
        cls._order = [('label', 'ASC')]

    @classmethod
    def __post_setup__(cls):
        super().__post_setup__()
        # Each viewer's template field defaults to its DEFAULT_TEMPLATES
        # entry, as a default_<field> method would.
        for viewer, template in DEFAULT_TEMPLATES.items():
            cls._defaults['%s_template' % viewer] = (
                lambda template=template: template)

    def viewer_url(self, viewer, **identifiers):
        """Return the URL of viewer for the identifiers

        None when the server has no public URL or the template needs an
        identifier that is unknown, so that no broken link is shown.
        """
        template = getattr(self, '%s_template' % viewer)
        if not template or not self.public_url:
            return None
        # A viewer the plugin reports as not installed on that Orthanc is
        # not offered (Orthanc Explorer is part of Orthanc itself).
        if (self.viewers is not None and viewer != 'explorer'
                and viewer not in self.viewers.split()):
            return None
        if any(v is None for v in identifiers.values()):
            return None
        identifiers = {k: quote(v, safe='') for k, v in identifiers.items()}
        try:
            return template.format(
                base=self.public_url.rstrip('/'), **identifiers)
        except (KeyError, IndexError, ValueError):
            return None

    def is_local_accession(self, issuer):
        "Tell whether an accession of issuer may be an order code here"
        return (not issuer or not self.accession_issuers
            or issuer in self.accession_issuers.split())

    def preview_url(self, instance_id):
        "Return the URL of Orthanc's PNG preview of an instance"
        if not self.public_url or not instance_id:
            return None
        return '%s/instances/%s/preview' % (
            self.public_url.rstrip('/'), quote(instance_id, safe=''))

    @classmethod
    def from_pacs(cls, values):
        "Return the server described by the plugin, creating it if needed"
        reader = SnapshotReader(
            gettext('health_radiology.msg_subject_server'))
        values = reader.mapping(values, 'server')
        label = reader.text(values, 'label')
        if not label:
            reader.error('msg_snapshot_missing', field='label')
        server_values = {
            'last_contact': datetime.datetime.now(),
            }
        public_url = reader.text(values, 'public_url')
        if public_url:
            server_values['public_url'] = public_url
        viewers = reader.texts(values, 'viewers')
        if viewers is not None:
            server_values['viewers'] = ' '.join(filter(None, viewers)) or None
        issuers = reader.texts(values, 'accession_issuers')
        if issuers is not None:
            server_values['accession_issuers'] = (
                ' '.join(filter(None, issuers)) or None)
        if values.get('templates') is not None:
            templates = reader.mapping(values['templates'], 'templates')
            for viewer in VIEWERS:
                template = reader.text(templates, viewer)
                if template:
                    server_values['%s_template' % viewer] = template
        servers = cls.search([('label', '=', label)], limit=1)
        if servers:
            cls.write(servers, server_values)
        else:
            servers = cls.create([{'label': label, **server_values}])
        server, = servers
        return server
