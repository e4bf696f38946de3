"""The pypowervm session and adapter to the NovaLink REST API, for the Nova
driver and the Neutron agents alike (no Nova import: the agents run in Neutron
processes).

Two ways in: NovaLink's local file logon (nova-compute on the NovaLink
partition, the default) or a remote logon with user and password. pypowervm
verifies a remote certificate only at logon and sends every later request with
``verify=False``; :class:`VerifiedSession` verifies all of them.

pypowervm sets ``verify`` on a fresh ``requests.Session`` per request, and
requests lets ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` override a session's
``verify``: a host with those set would ignore novalink_ca_file and
novalink_insecure. pypowervm's adapter therefore builds its requests sessions
as :class:`_RequestsSession`, which passes a VerifiedSession's choice per
request (where the environment cannot override it) and changes nothing for
other pypowervm sessions. Session tokens are cut out of pypowervm's log lines.
"""

from __future__ import annotations

import contextvars
import ipaddress
import logging
import os
import re
import types

import pypowervm.adapter as pvm_adpt
import pypowervm.exceptions as pvm_ex
import requests
from oslo_config import cfg
from pypowervm.helpers import vios_busy

from ibmvirt.common import tls as common_tls

#: Attempts (2 s apart, pypowervm's delay) to reach NovaLink while it is still starting.
CONNECT_TRIES = 60

#: The ``verify`` of the VerifiedSession request running in this context.
_VERIFY: contextvars.ContextVar[bool | str | None] = contextvars.ContextVar(
    "ibmvirt_novalink_verify", default=None
)


class NovaLinkConfigError(ValueError):
    """Bad [powervm] connection options; the message names the option."""

    def __init__(self, option: str, reason: str) -> None:
        super().__init__(f"[powervm] {option}: {reason}")
        self.option = option
        self.reason = reason

    def format_message(self) -> str:
        """The operator's message, as Nova exceptions give it (preflight reads it)."""
        return str(self)


class _RequestsSession(requests.Session):
    """requests.Session whose per-request verify is the VerifiedSession's."""

    def request(self, method, url, *args, **kwargs):
        verify = _VERIFY.get()
        if verify is not None:
            kwargs["verify"] = verify
        return super().request(method, url, *args, **kwargs)


# pypowervm.adapter uses its module name ``requests`` only for requests.Session().
pvm_adpt.requests = types.SimpleNamespace(Session=_RequestsSession)


class _SessionTokenFilter(logging.Filter):
    """pypowervm logs a request's headers dict and then puts the session token
    in it: a record formatted later (a queued or buffering handler) would show
    the token. Each record is formatted when it is logged, tokens cut out."""

    _TOKEN = re.compile(r"""(['"]X-API-Session['"]\s*:\s*)(['"])[^'"]*\2""")

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self._TOKEN.sub(r"\1'<sensitive>'", record.getMessage()), ()
        return True


logging.getLogger("pypowervm.adapter").addFilter(_SessionTokenFilter())


class VerifiedSession(pvm_adpt.Session):
    """A Session whose every HTTPS request checks the server certificate."""

    def __init__(self, *args, tls_verify: bool | str = True, **kwargs) -> None:
        self._tls_verify = tls_verify  # set before Session.__init__ logs on
        super().__init__(*args, **kwargs)

    def request(self, method, path, *args, **kwargs):
        verify = self._tls_verify if self.protocol == "https" else False
        kwargs["verify"] = verify
        if len(args) >= 4:  # (headers, body, sensitive, verify, ...) passed positionally
            args = (*args[:3], kwargs.pop("verify"), *args[4:])
        token = _VERIFY.set(verify)
        try:
            return super().request(method, path, *args, **kwargs)
        finally:
            _VERIFY.reset(token)


def session_args(conf: cfg.ConfigOpts) -> dict:
    """Session keyword arguments from [powervm]; bad combinations name the option."""
    pvm = conf.powervm
    if not pvm.novalink_host:
        return {"host": "localhost", "port": pvm.novalink_port, "protocol": "http"}
    if not pvm.novalink_username or not pvm.novalink_password:
        raise NovaLinkConfigError(
            option="novalink_username/novalink_password",
            reason=f"both are required for the remote NovaLink novalink_host={pvm.novalink_host}",
        )
    return {
        "host": pvm.novalink_host,
        "username": pvm.novalink_username,
        "password": pvm.novalink_password,
        "protocol": pvm.novalink_protocol or "https",
        "port": pvm.novalink_port,
    }


def tls_verify(conf: cfg.ConfigOpts) -> bool | str:
    """requests' ``verify``: the CA file, the system trust store, or off."""
    pvm = conf.powervm
    if pvm.novalink_insecure:
        return False
    if pvm.novalink_ca_file and not os.path.isfile(pvm.novalink_ca_file):
        raise NovaLinkConfigError(
            option="novalink_ca_file",
            reason=f"{pvm.novalink_ca_file} is not a readable file (a PEM CA bundle)",
        )
    if pvm.novalink_ca_file:
        return pvm.novalink_ca_file
    try:
        return common_tls.system_trust_store()  # not certifi's bundle
    except common_tls.NoTrustStore as exc:
        raise NovaLinkConfigError(
            option="novalink_ca_file",
            reason=f"unset, and this system has {exc}: set it to the CA bundle that signed "
            "the NovaLink certificate",
        ) from None


def build_adapter(
    conf: cfg.ConfigOpts, conn_tries: int = CONNECT_TRIES, timeout: float | None = None
) -> pvm_adpt.Adapter:
    """Log on to NovaLink and return an Adapter that retries busy VIOSes.

    ``timeout``: seconds per request; None keeps pypowervm's (1200 s, which
    long jobs of the Nova driver need).
    """
    args = session_args(conf)
    if timeout is not None:
        args["timeout"] = timeout
    # An unused certpath: pypowervm's certificate pinning is broken on Python 3
    # (it would disable verification); requests verifies through tls_verify.
    session = VerifiedSession(
        **args, tls_verify=tls_verify(conf), certpath="/nonexistent/", conn_tries=conn_tries
    )
    # No pypowervm log_helper: it dumps whole response bodies at INFO for
    # every error, expected 404s included.
    return pvm_adpt.Adapter(session, helpers=[vios_busy.vios_busy_retry_helper])


def logon_failure(conf: cfg.ConfigOpts, exc: Exception) -> str | None:
    """What to fix when a logon fails, naming the [powervm] option (None: not a config problem)."""
    pvm = conf.powervm
    if isinstance(exc, pvm_ex.SSLError):
        where = (
            f"novalink_ca_file={pvm.novalink_ca_file}"
            if pvm.novalink_ca_file
            else ("the system trust store (novalink_ca_file is unset)")
        )
        return (
            f"the TLS certificate of {pvm.novalink_host} is not trusted by {where}; set "
            "[powervm] novalink_ca_file to the CA bundle that signed it"
        )
    if isinstance(exc, pvm_ex.ConnectionError):
        if not pvm.novalink_host:
            return (
                f"nothing answers on localhost port {pvm.novalink_port}: run on the NovaLink "
                "partition (pvm-rest started) or set [powervm] novalink_host"
            )
        return (
            f"cannot connect to {pvm.novalink_host} port {pvm.novalink_port}; check "
            "[powervm] novalink_host, novalink_port and novalink_protocol"
        )
    if isinstance(exc, (pvm_ex.AuthFileReadError, pvm_ex.AuthFileAccessError)):
        return (
            f"the local logon's token file is not readable ({exc}): run nova-compute as a "
            "member of pvm_admin, or set [powervm] novalink_host for a remote logon"
        )
    response = getattr(exc, "response", None)
    if getattr(response, "status", None) in (401, 403):
        if not pvm.novalink_host:
            return "the local logon was refused: the service user must be in pvm_admin"
        return (
            f"logon refused (HTTP {response.status}); check [powervm] novalink_username "
            "and novalink_password"
        )
    return None


def emulator_control_url(adapter, option: str) -> str:
    """The NovaLink emulator's control endpoint (``<base>/_emulator``) behind
    ``adapter``; NovaLinkConfigError naming ``option`` unless NovaLink is on loopback
    (the endpoint answers there only, and a real NovaLink has none)."""
    session = adapter.session
    host = session.host.strip("[]")
    loopback = host == "localhost"
    if not loopback:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
    if not loopback:
        raise NovaLinkConfigError(
            option=option,
            reason="'emulator' works through the NovaLink emulator's control endpoint, "
            f"which answers on loopback only, and NovaLink is {host}; use the real "
            "NovaLink's way with a real NovaLink",
        )
    return session.dest + "/_emulator"
