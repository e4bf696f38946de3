"""The system's CA trust store, for a CA-file option left unset.

requests and zhmcclient, told only "verify", use certifi's bundle instead of
the host's: an operator whose HMC or NovaLink certificate is signed by the
site CA in the system store would find verification failing and reach for the
insecure option. OpenSSL's default verify paths are what every other TLS
client on the host uses (SSL_CERT_FILE and SSL_CERT_DIR apply).
"""

from __future__ import annotations

import ssl


class NoTrustStore(Exception):
    """The host has no CA trust store; the message says what OpenSSL looked for."""


def system_trust_store() -> str:
    """The system CA bundle (a PEM file), else its hashed directory."""
    paths = ssl.get_default_verify_paths()
    store = paths.cafile or paths.capath
    if not store:
        raise NoTrustStore(f"no CA trust store ({paths.openssl_cafile} or {paths.openssl_capath})")
    return store
