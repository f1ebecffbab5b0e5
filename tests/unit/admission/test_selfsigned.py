"""selfsigned.py: a CA and a serving certificate for 127.0.0.1 that it signs; the key file private, removed after."""

from __future__ import annotations

import ipaddress
import os
import ssl
from pathlib import Path

from cryptography import x509

from ai_storage_orchestrator.admission import selfsigned


def test_the_serving_certificate_names_the_address_and_is_signed_by_the_ca() -> None:
    pair = selfsigned.issue("127.0.0.1")
    ca, cert = x509.load_pem_x509_certificate(pair.ca_pem), x509.load_pem_x509_certificate(pair.cert_pem)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.issuer == ca.subject
    cert.verify_directly_issued_by(ca)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert selfsigned.issue("127.0.0.1").ca_pem != pair.ca_pem, "a new CA per process"


def test_the_pair_loads_from_private_files_that_are_removed_after() -> None:
    pair = selfsigned.issue()
    with selfsigned.written(pair) as files:
        assert os.stat(files.key_file).st_mode & 0o077 == 0
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(files.cert_file, files.key_file)
        directory = Path(files.key_file).parent
    assert not directory.exists()
