"""trytond over TLS, with the hospital's own CA: the plugin syncs when
GnuHealth.TrytonCaBundle names the CA, and refuses trytond's certificate,
with a log line naming the setting, without it (verification is on by
default). The CA and trytond's certificate are made here."""
import datetime
import ipaddress
import os
import ssl

import pytest
from proteus import Model
from pydicom import dcmread
from proteus import config as proteus_config

import samples
import stack
from stack import wait_until

try:
    from cryptography import x509
except ImportError:  # the test extra has it; CI must not skip (as the cluster test)
    if os.environ.get('CI'):
        raise
    pytest.skip('needs the cryptography package (pip install ".[test]")',
                allow_module_level=True)
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

FAST = {'RetryMinDelay': 0.5, 'RetryMaxDelay': 2, 'PollInterval': 1}


def _certificate(subject, issuer, public_key, signing_key, ca, names=()):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
               .public_key(public_key).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(names)),
                                        critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def _pem(path, data):
    path.write_bytes(data)
    return str(path)


@pytest.fixture
def tls_files(tmp_path):
    """(certificate, private key, CA certificate) of trytond at 127.0.0.1,
    signed by a CA made for the test."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate('Test Hospital CA', 'Test Hospital CA', ca_key.public_key(), ca_key, True)
    server = _certificate('127.0.0.1', 'Test Hospital CA', key.public_key(), ca_key, False,
                          [x509.IPAddress(ipaddress.ip_address('127.0.0.1')),
                           x509.DNSName('localhost')])
    folder = tmp_path / 'tls'
    folder.mkdir()
    return (_pem(folder / 'trytond.crt', server.public_bytes(serialization.Encoding.PEM)),
            _pem(folder / 'trytond.key', key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption())),
            _pem(folder / 'ca.crt', ca.public_bytes(serialization.Encoding.PEM)))


@pytest.fixture
def tls_trytond(tmp_path, template_database, tls_files):
    server = stack.Trytond(tmp_path / 'trytond', template=template_database, tls=tls_files)
    yield server.start()
    server.stop()


def test_sync_over_tls_with_the_ca_and_refused_without(tmp_path, tls_trytond, tls_files,
                                                      failure_logs):
    assert tls_trytond.url.startswith('https://')
    trusting = stack.Orthanc(tmp_path / 'trusting', tls_trytond.url,
                             gnuhealth={**FAST, 'TrytonCaBundle': tls_files[2]})
    untrusting = stack.Orthanc(tmp_path / 'untrusting', tls_trytond.url, gnuhealth=FAST)
    failure_logs([trusting, untrusting, tls_trytond])
    files = samples.generate_study(tmp_path / 'dicom', series=1, instances=2, PatientID='TLS-1')
    uid = dcmread(files[0]).StudyInstanceUID
    try:
        trusting.start()
        trusting.store(files)
        with proteus_config.set_xmlrpc_session(
                tls_trytond.database_url, username=stack.ADMIN[0], password=stack.ADMIN[1],
                context=ssl.create_default_context(cafile=tls_files[2])):
            Study = Model.get('gnuhealth.radiology.study')
            studies = wait_until(lambda: Study.find([('reception', '=', 'complete')]), 60,
                                 'the study in GNU Health over TLS')
            [study_id] = trusting.get('/studies')
            assert [(s.orthanc_id, s.study_uid) for s in studies] == [(study_id, uid)]

        untrusting.start()
        untrusting.store(files)
        log = untrusting.workdir / 'orthanc.log'
        # The sync worker's line (the worklist's says the same in its own).
        line = wait_until(lambda: next((text for text in log.read_text().splitlines()
                                        if 'TLS certificate is not trusted' in text
                                        and 'nothing is lost' in text), None),
                          30, 'the refusal in the log')
        assert 'GnuHealth.TrytonCaBundle' in line and tls_trytond.url in line
        status = untrusting.get('/gnuhealth/status')
        assert status['gnuhealth_reachable'] is False and status['pushes'] == 0
        assert 'TrytonCaBundle' in status['last_error']
    finally:
        untrusting.stop()
        trusting.stop()
