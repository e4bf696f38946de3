"""Terminals through NovaLink's own commands on the NovaLink partition."""

from __future__ import annotations

from pypowervm import exceptions as pvm_ex
from pypowervm.tasks import vterm as pvm_vterm

from ibmvirt.powervm import exceptions as pvm_exc
from ibmvirt.powervm.vterm import VTerm


class MkvtermVTerm(VTerm):
    def output(self, lpar_uuid: str) -> bytes:
        raise NotImplementedError(
            "NovaLink keeps no history of a partition's virtual terminal; "
            "use the VNC console ([powervm] vterm_access)"
        )

    def open_vnc(self, lpar_uuid: str) -> int:
        """``mkvterm --id N --vnc --local`` (pypowervm); needs the local logon."""
        try:
            return int(pvm_vterm.open_localhost_vnc_vterm(self.host.adapter, lpar_uuid))
        except pvm_ex.ConsoleNotLocal as exc:
            raise pvm_exc.ConsoleUnavailable(
                lpar=lpar_uuid,
                reason="mkvterm runs on the NovaLink partition: nova-compute must run "
                "there with the local logon (no [powervm] novalink_host)",
            ) from exc

    def close(self, lpar_uuid: str) -> None:
        """``rmvterm`` locally, the CloseVterm job remotely (pypowervm)."""
        pvm_vterm.close_vterm(self.host.adapter, lpar_uuid)
