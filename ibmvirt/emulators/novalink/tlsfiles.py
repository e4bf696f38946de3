"""HTTPS for the NovaLink emulator.

pypowervm 1.1.27 verifies a server in one of two ways at logon:

* pinning (``{certpath}{host}{certext}`` compared by fingerprint) — broken on
  Python 3: ``pypowervm.util.validate_certificate`` calls ``conn.shutdown`` on a
  socket that ``ssl.wrap_socket`` has already taken over and raises EBADF, so
  do not place a pin file for the emulator;
* otherwise ``requests`` verifies the chain against its CA bundle, so clients
  set ``REQUESTS_CA_BUNDLE`` to the emulator's ``ca.pem``.
"""

from __future__ import annotations

import ssl

from ibmvirt.emulators import tls


def prepare(directory: str | None = None) -> tuple[ssl.SSLContext, tls.TLSMaterial]:
    """Create a CA and server certificate; returns (server context, material)."""
    material = tls.make_tls_material(directory, common_name="ibmvirt NovaLink emulator")
    return tls.server_context(material), material
