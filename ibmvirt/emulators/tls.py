"""Self-signed TLS material for the emulators (shared by the HMC and NovaLink emulators).

Why: the real client libraries verify TLS (zhmcclient hard-codes https and verifies
by default), and the project never disables verification. Each emulator therefore
creates a private CA and a server certificate signed by it, writes the CA to a PEM
file that clients pass as their CA bundle (e.g. ``zhmcclient.Session(...,
verify_cert=ca_file)``), and serves with the server certificate.

Usage::

    material = make_tls_material("/some/dir")        # or a fresh temp dir
    ctx = server_context(material)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    print(material.ca_file)                            # give this to clients

The server certificate is valid for ``localhost`` and ``127.0.0.1`` (and ``::1``)
by default; pass ``hostnames``/``ip_addresses`` to add more. Keys are ECDSA P-256
(fast to generate, accepted by OpenSSL 1.1+ and 3.x). The private keys are written
with mode 0600.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["TLSMaterial", "make_tls_material", "server_context", "client_context"]

CA_FILE_NAME = "ca.pem"
CERT_FILE_NAME = "server.pem"
KEY_FILE_NAME = "server-key.pem"


@dataclass(frozen=True)
class TLSMaterial:
    """Paths of the PEM files making up an emulator's TLS identity."""

    directory: str
    ca_file: str  # CA certificate: what clients verify against
    cert_file: str  # server certificate (leaf), signed by the CA
    key_file: str  # server private key (mode 0600)


def _write(path: str, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def make_tls_material(
    directory: str | None = None,
    *,
    common_name: str = "ibmvirt emulator",
    hostnames: Iterable[str] = ("localhost",),
    ip_addresses: Iterable[str] = ("127.0.0.1", "::1"),
    valid_days: int = 30,
) -> TLSMaterial:
    """Create a private CA and a server certificate signed by it, as PEM files.

    ``directory`` is created if needed; with ``None`` a fresh temporary directory
    is used (the caller owns it). Existing files in it are overwritten, so every
    emulator start has a fresh identity and stale CA files cannot validate it.
    """
    if directory is None:
        directory = tempfile.mkdtemp(prefix="ibmvirt-tls-")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    not_before = now - datetime.timedelta(minutes=5)
    not_after = now + datetime.timedelta(days=valid_days)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ibmvirt"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{common_name} CA"),
        ]
    )
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
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
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(h) for h in hostnames]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ibmvirt"),
                    x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                ]
            )
        )
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    material = TLSMaterial(
        directory=directory,
        ca_file=os.path.join(directory, CA_FILE_NAME),
        cert_file=os.path.join(directory, CERT_FILE_NAME),
        key_file=os.path.join(directory, KEY_FILE_NAME),
    )
    _write(material.ca_file, ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(
        material.cert_file,
        cert.public_bytes(serialization.Encoding.PEM)
        + ca_cert.public_bytes(serialization.Encoding.PEM),
        0o644,
    )
    _write(
        material.key_file,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        0o600,
    )
    return material


def server_context(material: TLSMaterial) -> ssl.SSLContext:
    """Return a server-side SSLContext (TLS 1.2+) loaded with ``material``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(material.cert_file, material.key_file)
    return ctx


def client_context(material: TLSMaterial) -> ssl.SSLContext:
    """Return a verifying client SSLContext that trusts only the emulator's CA."""
    ctx = ssl.create_default_context(cafile=material.ca_file)
    return ctx
