"""Certificates for the local control plane: a cluster CA, the API server's serving cert, an admin client cert in
system:masters, and the service-account signing key pair."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = dt.timedelta(days=7)


@dataclass(frozen=True)
class ClusterCerts:
    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    sa_public: Path
    sa_private: Path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _issue(
    *,
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    is_ca: bool = False,
    usages: list[x509.ObjectIdentifier] | None = None,
    sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if is_ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def generate(directory: Path) -> ClusterCerts:
    """Write a fresh set of certificates into `directory` (created if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = ClusterCerts(
        ca_cert=directory / "ca.crt",
        ca_key=directory / "ca.key",
        serving_cert=directory / "apiserver.crt",
        serving_key=directory / "apiserver.key",
        admin_cert=directory / "admin.crt",
        admin_key=directory / "admin.key",
        sa_public=directory / "sa.pub",
        sa_private=directory / "sa.key",
    )
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("ai-storage-orchestrator-test-ca")
    ca = _issue(subject=ca_name, key=ca_key, issuer=ca_name, issuer_key=ca_key, is_ca=True)
    paths.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    _write_key(paths.ca_key, ca_key)

    serving_key = ec.generate_private_key(ec.SECP256R1())
    serving = _issue(
        subject=_name("kube-apiserver"),
        key=serving_key,
        issuer=ca_name,
        issuer_key=ca_key,
        usages=[ExtendedKeyUsageOID.SERVER_AUTH],
        sans=[
            x509.DNSName("localhost"),
            x509.DNSName("kubernetes"),
            x509.DNSName("kubernetes.default"),
            x509.DNSName("kubernetes.default.svc"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("10.96.0.1")),
        ],
    )
    paths.serving_cert.write_bytes(serving.public_bytes(serialization.Encoding.PEM))
    _write_key(paths.serving_key, serving_key)

    admin_key = ec.generate_private_key(ec.SECP256R1())
    admin = _issue(
        subject=_name("admin", "system:masters"),
        key=admin_key,
        issuer=ca_name,
        issuer_key=ca_key,
        usages=[ExtendedKeyUsageOID.CLIENT_AUTH],
    )
    paths.admin_cert.write_bytes(admin.public_bytes(serialization.Encoding.PEM))
    _write_key(paths.admin_key, admin_key)

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(paths.sa_private, sa_key)
    paths.sa_public.write_bytes(
        sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return paths


@dataclass(frozen=True)
class NodeCerts:
    """A real kubelet's identity (client cert ``system:node:<name>`` in ``system:nodes``, what the Node authorizer
    expects) and its serving cert for the API server to verify (IP SAN = the node's address)."""

    client_cert: Path
    client_key: Path
    serving_cert: Path
    serving_key: Path


def issue_node(paths: ClusterCerts, directory: Path, *, name: str, address: str) -> NodeCerts:
    directory.mkdir(parents=True, exist_ok=True)
    ca = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError("the cluster CA key is not an EC key")
    node = NodeCerts(
        client_cert=directory / "kubelet-client.crt",
        client_key=directory / "kubelet-client.key",
        serving_cert=directory / "kubelet.crt",
        serving_key=directory / "kubelet.key",
    )
    client_name = _name(f"system:node:{name}", "system:nodes")
    node_ip: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(address))]
    for cert_path, key_path, subject, usage, sans in (
        (node.client_cert, node.client_key, client_name, ExtendedKeyUsageOID.CLIENT_AUTH, None),
        (node.serving_cert, node.serving_key, _name(name), ExtendedKeyUsageOID.SERVER_AUTH, node_ip),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(subject=subject, key=key, issuer=ca.subject, issuer_key=ca_key, usages=[usage], sans=sans)
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key_path, key)
    return node
