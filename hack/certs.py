"""Certificates and keys for the local control plane: a CA, serving and client certs, SA keys."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = datetime.timedelta(days=30)


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _issue(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_name: x509.Name,
    subject: x509.Name,
    *,
    server_names: list[str] | None = None,
    client: bool = False,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [ExtendedKeyUsageOID.SERVER_AUTH]
    builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if server_names:
        sans: list[x509.GeneralName] = []
        for name in server_names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                sans.append(x509.DNSName(name))
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Name, x509.Certificate]:
    """A fresh self-signed CA: its key, name and certificate."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(common_name)
    now = datetime.datetime.now(datetime.UTC)
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return ca_key, ca_name, ca_cert


def generate_kafka(directory: Path) -> None:
    """Write ca.crt, broker.{crt,key,pem} (127.0.0.1 and localhost) and client.{crt,key}.

    ``broker.pem`` is the broker's PKCS#8 key followed by its certificate: a Kafka keystore of
    ``ssl.keystore.type=PEM``.  The CA's key is not kept.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_name, ca_cert = _ca("paydeck-kafka-ca")
    (directory / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    issued = {
        "broker": _issue(ca_key, ca_name, _name("kafka-broker"),
                         server_names=["localhost", "127.0.0.1"]),
        "client": _issue(ca_key, ca_name, _name("paydeck-kafka-client"), client=True),
    }
    for stem, (key, cert) in issued.items():
        _write_key(directory / f"{stem}.key", key)
        (directory / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem = directory / "broker.pem"
    pem.write_bytes(
        (directory / "broker.key").read_bytes() + (directory / "broker.crt").read_bytes()
    )
    pem.chmod(0o600)


def generate(directory: Path) -> None:
    """Write ca.{crt,key}, apiserver.{crt,key}, admin.{crt,key} and sa.{key,pub} into directory."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_name, ca_cert = _ca("paydeck-local-ca")
    _write_key(directory / "ca.key", ca_key)
    (directory / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))

    serving_names = [
        "localhost", "127.0.0.1", "10.0.0.1", "kubernetes", "kubernetes.default",
        "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
    ]
    issued = {
        "apiserver": _issue(ca_key, ca_name, _name("kube-apiserver"), server_names=serving_names),
        "admin": _issue(ca_key, ca_name, _name("paydeck-admin", "system:masters"), client=True),
    }
    for stem, (key, cert) in issued.items():
        _write_key(directory / f"{stem}.key", key)
        (directory / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(directory / "sa.key", sa_key)
    (directory / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
