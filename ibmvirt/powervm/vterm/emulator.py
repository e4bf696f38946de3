"""Terminals of the NovaLink emulator, through its loopback control endpoint."""

from __future__ import annotations

import requests

from ibmvirt.common import novalink
from ibmvirt.powervm import emulated
from ibmvirt.powervm import exceptions as pvm_exc
from ibmvirt.powervm.vterm import VTerm

#: Seconds to wait for the control endpoint.
TIMEOUT = 30


class EmulatorVTerm(VTerm):
    def _call(self, method: str, sub: str, lpar_uuid: str, **kwargs) -> dict:
        url = emulated.control_url(self.host.adapter, "vterm_access") + sub
        verify = novalink.tls_verify(self.conf) if url.startswith("https") else False
        try:
            resp = requests.request(method, url, timeout=TIMEOUT, verify=verify, **kwargs)
            resp.raise_for_status()
            return resp.json()
        except (requests.RequestException, ValueError) as exc:
            raise pvm_exc.ConsoleUnavailable(
                lpar=lpar_uuid, reason=f"the emulator's {url} did not answer: {exc}"
            ) from exc

    def output(self, lpar_uuid: str) -> bytes:
        body = self._call("GET", "/vterm", lpar_uuid, params={"lpar": lpar_uuid})
        return body["output"].encode("latin-1")

    def open_vnc(self, lpar_uuid: str) -> int:
        body = self._call("POST", "/vterm/vnc", lpar_uuid, json={"lpar": lpar_uuid})
        return int(body["port"])

    def close(self, lpar_uuid: str) -> None:
        self._call("POST", "/vterm/close", lpar_uuid, json={"lpar": lpar_uuid})
