"""Sessions: password logon and NovaLink local (file) logon.

Password logon returns the token in the LogonResponse. Local logon (no
password, ``GenerateX-API-SessionFile``) writes the token to a mode-0600 file
and returns its path; pypowervm then reads the file, so client and emulator
must share a filesystem, as on a real NovaLink partition. Local logon is
therefore served to loopback clients only (anyone else could not read the file
anyway, but would fill the directory), at most MAX_FILE_SESSIONS at a time
(the oldest is logged off beyond that), and every token file goes when its
session does: logoff, expiry through the control endpoint, server stop.
"""

from __future__ import annotations

import hmac
import os
import secrets
import shutil
import tempfile
import threading

from lxml import etree

from ibmvirt.emulators import tls
from ibmvirt.emulators.novalink import errors
from ibmvirt.emulators.novalink import xmlutil as x

LOGON_CONTENT_TYPE = "application/vnd.ibm.powervm.web+xml; type=LogonResponse"
#: Live local (file) sessions; a new one beyond this logs the oldest off.
MAX_FILE_SESSIONS = 64


class Sessions:
    """Issued session tokens. Tokens are never logged."""

    def __init__(self, users: dict[str, str], token_dir: str | None = None) -> None:
        self._users = dict(users)
        self._tokens: set[str] = set()
        self._files: dict[str, str] = {}
        self._lock = threading.Lock()
        self._own_dir = token_dir is None
        self.token_dir = token_dir or tempfile.mkdtemp(prefix="ibmvirt-nl-tok-")
        tls.private_directory(self.token_dir)  # token files go nowhere others can read

    def logon(self, body: bytes, local: bool = True) -> bytes:
        """Handle PUT web/Logon; returns the LogonResponse document.

        ``local``: the client is on this machine (loopback), which local
        (file) logon requires.
        """
        try:
            req = x.parse(body)
        except etree.XMLSyntaxError as exc:
            raise errors.bad_request(f"LogonRequest is not well-formed XML: {exc}") from exc
        user = req.findtext(x.q("UserID", x.WEB_NS)) or ""
        password = req.findtext(x.q("Password", x.WEB_NS))
        want_file = req.findtext(x.q("GenerateX-API-SessionFile", x.WEB_NS)) == "true"
        token = secrets.token_urlsafe(48)
        resp = etree.Element(
            x.q("LogonResponse", x.WEB_NS), nsmap={None: x.WEB_NS}, schemaVersion="V1_1_0"
        )
        md = etree.SubElement(resp, x.q("Metadata", x.WEB_NS))
        etree.SubElement(md, x.q("Atom", x.WEB_NS))
        if password is not None:
            expected = self._users.get(user)
            if expected is None or not hmac.compare_digest(expected, password):
                raise errors.RestError(
                    401,
                    f"Logon failed for user {user!r}: unknown user or wrong password. "
                    "Check the inventory's users section, or --user with the password in "
                    "$IBMVIRT_NOVALINK_EMULATOR_PASSWORD.",
                )
            x.sub(resp, "X-API-Session", token, ns=x.WEB_NS)
        elif want_file:
            if not local:
                raise errors.RestError(
                    401,
                    f"Local logon for user {user!r} is only served to clients on this "
                    "machine (loopback); remote clients log on with a Password",
                )
            path = os.path.join(self.token_dir, f"token-{secrets.token_hex(8)}")
            fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(token)
            with self._lock:
                self._files[token] = path
                oldest = list(self._files)[: max(0, len(self._files) - MAX_FILE_SESSIONS)]
            for old in oldest:
                self.logoff(old)
            x.sub(resp, "X-API-SessionFile", path, ns=x.WEB_NS)
        else:
            raise errors.bad_request(
                "LogonRequest has neither Password nor GenerateX-API-SessionFile=true"
            )
        with self._lock:
            self._tokens.add(token)
        return etree.tostring(resp, xml_declaration=True, encoding="UTF-8")

    def logoff(self, token: str | None) -> None:
        """DELETE web/Logon: forget the token and remove its file."""
        path = None
        with self._lock:
            if token:
                self._tokens.discard(token)
                path = self._files.pop(token, None)
        if path:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def check(self, token: str | None) -> None:
        """Raise 401 unless the token is live (pypowervm then logs on again)."""
        with self._lock:
            ok = token is not None and token in self._tokens
        if not ok:
            raise errors.RestError(
                401, "No valid X-API-Session; log on with PUT /rest/api/web/Logon"
            )

    def expire_all(self) -> None:
        """Invalidate every session and remove the token files (client re-logon tests)."""
        with self._lock:
            tokens = self._tokens | set(self._files)
        for token in tokens:
            self.logoff(token)

    def close(self) -> None:
        """Forget every session and remove the token files (server stop)."""
        self.expire_all()
        if self._own_dir:
            shutil.rmtree(self.token_dir, ignore_errors=True)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._tokens)
