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

State directories are shared with nobody: ``private_directory`` creates one
(mode 0700) or accepts an existing one only if it is a real directory owned by
this user and not writable by group or others, and ``write_private_file``
writes each file to a new temporary file (created exclusively, never through a
symbolic link, mode set on the descriptor) renamed into place. Another local
user who created the directory first therefore cannot read the private key,
swap the CA file clients trust, or redirect a write through a link. Both
emulators use them for TLS material, token files and kept disk data.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "TLSMaterial",
    "UnsafeDirectoryError",
    "make_tls_material",
    "private_directory",
    "write_private_file",
    "server_context",
    "client_context",
]

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


class UnsafeDirectoryError(PermissionError):
    """A state directory another local user could read or change: not used."""


def private_directory(path: str) -> str:
    """Create ``path`` (mode 0700, parents as needed) or check an existing one.

    Raises UnsafeDirectoryError, naming the directory and the fix, if it is a
    symbolic link or not a directory, belongs to another user, or is writable
    by group or others. Returns ``path``.
    """
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, mode=0o700, exist_ok=True)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise UnsafeDirectoryError(
            f"{path} is not a directory (a symbolic link or a file); give a directory of your own"
        )
    if st.st_uid != os.geteuid():
        raise UnsafeDirectoryError(
            f"{path} belongs to uid {st.st_uid}, not to this user (uid {os.geteuid()}); "
            "another user could read or replace the emulator's keys and files there: "
            "give a directory of your own (or omit the option for a fresh one)"
        )
    if st.st_mode & 0o022:
        raise UnsafeDirectoryError(
            f"{path} is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"run `chmod go-w {path}` or give another directory"
        )
    return path


def write_private_file(path: str, data: bytes, mode: int = 0o600) -> None:
    """Write ``path`` atomically through a new, exclusively created temporary file.

    The temporary file is opened with O_EXCL and O_NOFOLLOW (``mkstemp``), its
    mode set on the descriptor, and it is renamed over ``path`` (a symbolic
    link there is replaced, never followed).
    """
    directory, name = os.path.split(path)
    fd, tmp = tempfile.mkstemp(dir=directory or ".", prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def make_tls_material(
    directory: str | None = None,
    *,
    common_name: str = "ibmvirt emulator",
    hostnames: Iterable[str] = ("localhost",),
    ip_addresses: Iterable[str] = ("127.0.0.1", "::1"),
    valid_days: int = 30,
) -> TLSMaterial:
    """Create a private CA and a server certificate signed by it, as PEM files.

    ``directory`` is created if needed and refused (UnsafeDirectoryError) if
    another user could change it (``private_directory``); with ``None`` a fresh
    temporary directory is used (the caller owns it). Existing files in it are
    replaced, so every emulator start has a fresh identity and stale CA files
    cannot validate it.
    """
    if directory is None:
        directory = tempfile.mkdtemp(prefix="ibmvirt-tls-")
    private_directory(directory)
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
    write_private_file(material.ca_file, ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)
    write_private_file(
        material.cert_file,
        cert.public_bytes(serialization.Encoding.PEM)
        + ca_cert.public_bytes(serialization.Encoding.PEM),
        0o644,
    )
    write_private_file(
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
