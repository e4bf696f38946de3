"""The pypowervm session and adapter to the NovaLink REST API.

Two ways in: NovaLink's local file logon (nova-compute on the NovaLink
partition, the default) or a remote logon with user and password. pypowervm
verifies a remote certificate only at logon and sends every later request with
``verify=False``; :class:`VerifiedSession` verifies all of them.
"""

from __future__ import annotations

import pypowervm.adapter as pvm_adpt
from oslo_config import cfg
from pypowervm.helpers import vios_busy

from ibmvirt.powervm import exceptions as pvm_exc

#: Attempts (about 1 s apart) to reach NovaLink while it is still starting.
CONNECT_TRIES = 60


class VerifiedSession(pvm_adpt.Session):
    """A Session whose every HTTPS request checks the server certificate."""

    def __init__(self, *args, tls_verify: bool | str = True, **kwargs) -> None:
        self._tls_verify = tls_verify  # set before Session.__init__ logs on
        super().__init__(*args, **kwargs)

    def request(self, method, path, *args, **kwargs):
        kwargs["verify"] = self._tls_verify if self.protocol == "https" else False
        if len(args) >= 4:  # (headers, body, sensitive, verify, ...) passed positionally
            args = (*args[:3], kwargs.pop("verify"), *args[4:])
        return super().request(method, path, *args, **kwargs)


def session_args(conf: cfg.ConfigOpts) -> dict:
    """Session keyword arguments from [powervm]; bad combinations name the option."""
    pvm = conf.powervm
    if not pvm.novalink_host:
        return {"host": "localhost", "port": pvm.novalink_port, "protocol": "http"}
    if not pvm.novalink_username or not pvm.novalink_password:
        raise pvm_exc.ConfigError(
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
    """requests' ``verify``: the CA file, the system store (True), or off."""
    pvm = conf.powervm
    if pvm.novalink_insecure:
        return False
    return pvm.novalink_ca_file or True


def build_adapter(conf: cfg.ConfigOpts, conn_tries: int = CONNECT_TRIES) -> pvm_adpt.Adapter:
    """Log on to NovaLink and return an Adapter that retries busy VIOSes."""
    args = session_args(conf)
    # An unused certpath: pypowervm's certificate pinning is broken on Python 3
    # (it would disable verification); requests verifies through tls_verify.
    session = VerifiedSession(
        **args, tls_verify=tls_verify(conf), certpath="/nonexistent/", conn_tries=conn_tries
    )
    # No pypowervm log_helper: it dumps whole response bodies at INFO for
    # every error, expected 404s included.
    return pvm_adpt.Adapter(session, helpers=[vios_busy.vios_busy_retry_helper])
