"""An LPAR's virtual terminal, as nova-compute on the NovaLink partition reaches it.

PowerVM gives each partition one virtual terminal (its console). On the
NovaLink partition ``mkvterm`` attaches to it, or starts a VNC server for it
on localhost (``--vnc --local``); ``rmvterm`` closes the session. The
hypervisor keeps no history of what the terminal showed. Chosen by
``[powervm] vterm_access``:

* ``mkvterm`` (:mod:`.mkvterm`): a real NovaLink partition. VNC consoles; no
  console log (nothing on a real NovaLink keeps one, and a logger holding the
  terminal would lock out ``mkvterm`` and VNC: one session per partition).
* ``emulator`` (:mod:`.emulator`): the NovaLink emulator's terminals, through
  its control endpoint on loopback (a scrollback and an RFB server per LPAR).
"""

from __future__ import annotations

import abc

from oslo_config import cfg

#: At most this much of a terminal is returned as console output (Nova's
#: libvirt driver caps its console log at the same size).
MAX_CONSOLE_BYTES = 100 * 1024


class VTerm(abc.ABC):
    def __init__(self, host, conf: cfg.ConfigOpts) -> None:
        self.host = host
        self.conf = conf

    @abc.abstractmethod
    def output(self, lpar_uuid: str) -> bytes:
        """What the LPAR's terminal showed lately (NotImplementedError if unknown)."""

    @abc.abstractmethod
    def open_vnc(self, lpar_uuid: str) -> int:
        """Start (or find) a VNC server on localhost for the LPAR's terminal; its port."""

    @abc.abstractmethod
    def close(self, lpar_uuid: str) -> None:
        """End the LPAR's terminal session and its VNC server (fine if none)."""


def load(host, conf: cfg.ConfigOpts) -> VTerm:
    """The implementation ``[powervm] vterm_access`` names."""
    if conf.powervm.vterm_access == "emulator":
        from ibmvirt.powervm.vterm import emulator

        return emulator.EmulatorVTerm(host, conf)
    from ibmvirt.powervm.vterm import mkvterm

    return mkvterm.MkvtermVTerm(host, conf)
