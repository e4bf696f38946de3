"""LPAR NVRAM kept outside the hypervisor, so a recreated LPAR boots as before.

:func:`load` picks the store ([powervm] nvram_store: none, swift, local);
:class:`NvramManager` copies an LPAR's NVRAM into it when NovaLink reports an
NVRAM change (the event feed) and, synchronously, before a move; spawn reads
it back when it recreates an LPAR elsewhere (evacuate, a cold migration to
another host); delete forgets it. Event-driven copies run on one worker
thread and collapse: a burst of events for one LPAR is one read and at most
one upload.
"""

from __future__ import annotations

import threading

from oslo_log import log as logging
from pypowervm import const as pvm_const
from pypowervm import exceptions as pvm_ex
from pypowervm.wrappers import logical_partition as pvm_lpar

from ibmvirt.powervm.nvram.base import NvramError, NvramStore

LOG = logging.getLogger(__name__)

__all__ = ["NvramError", "NvramManager", "NvramStore", "load"]


def load(conf) -> NvramStore | None:
    """The configured store, None for ``nvram_store = none``."""
    opts = conf.powervm
    if opts.nvram_store == "swift":
        from ibmvirt.powervm.exceptions import ConfigError
        from ibmvirt.powervm.nvram.swift import SwiftNvramStore

        for name in ("swift_auth_url", "swift_password"):
            if not getattr(opts, name):
                raise ConfigError(option=name, reason="nvram_store = swift needs it")
        return SwiftNvramStore(opts)
    if opts.nvram_store == "local":
        from ibmvirt.powervm.nvram.local import LocalNvramStore

        return LocalNvramStore(opts.nvram_local_path)
    return None


def read_nvram(adapter, lpar_uuid: str) -> str | None:
    """The LPAR's NVRAM as NovaLink gives it (base64 text); None if it is gone."""
    try:
        lpar = pvm_lpar.LPAR.get(adapter, uuid=lpar_uuid, xag=[pvm_const.XAG.NVRAM])
    except pvm_ex.HttpNotFound:
        return None
    return lpar.nvram


class NvramManager:
    """Copies NVRAM of this host's LPARs into ``store``."""

    def __init__(self, store: NvramStore, adapter, owner_of) -> None:
        """``owner_of(lpar_uuid)``: the Nova instance UUID of an LPAR of this
        host's instances, None for any other LPAR."""
        self.store_api = store
        self._adapter = adapter
        self._owner_of = owner_of
        self._pending: dict[str, str | None] = {}  # LPAR UUID -> instance UUID if known
        self._wake = threading.Condition()
        self._stopped = False
        self._worker: threading.Thread | None = None

    # -- event-driven -------------------------------------------------------------

    def changed(self, lpar_uuid: str, instance_uuid: str | None = None) -> None:
        """NovaLink reported new NVRAM: copy it soon (collapsing repeats)."""
        with self._wake:
            if self._stopped:
                return
            self._pending[lpar_uuid] = instance_uuid or self._pending.get(lpar_uuid)
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="powervm-nvram", daemon=True)
                self._worker.start()
            self._wake.notify()

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._pending.clear()
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._stopped:
                    self._wake.wait()
                if self._stopped:
                    return
                lpar_uuid, instance_uuid = self._pending.popitem()
            try:
                instance_uuid = instance_uuid or self._owner_of(lpar_uuid)
                if instance_uuid is not None:
                    self._copy(lpar_uuid, instance_uuid)
            except Exception as exc:  # noqa: BLE001  (one LPAR's failure must not stop the others)
                LOG.warning("Could not save the NVRAM of LPAR %s: %s", lpar_uuid, exc)

    # -- synchronous --------------------------------------------------------------

    def store_now(self, lpar_uuid: str, instance_uuid: str) -> None:
        """Copy the NVRAM now (before a move); errors are the caller's."""
        self._copy(lpar_uuid, instance_uuid)

    def _copy(self, lpar_uuid: str, instance_uuid: str) -> None:
        nvram = read_nvram(self._adapter, lpar_uuid)
        if nvram is None:
            return
        if self.store_api.store(instance_uuid, nvram.encode()):
            LOG.debug("Saved the NVRAM of LPAR %s (%d bytes)", lpar_uuid, len(nvram))

    def fetch(self, instance_uuid: str) -> str | None:
        """The NVRAM to recreate the instance's LPAR with (None: start blank)."""
        try:
            data = self.store_api.fetch(instance_uuid)
        except NvramError as exc:
            # A recreated LPAR still boots (from its first disk) without it.
            LOG.warning("No saved NVRAM for instance %s: %s", instance_uuid, exc)
            return None
        return None if data is None else data.decode()

    def delete(self, instance_uuid: str) -> None:
        """Forget the instance's copy (errors logged: a delete must not fail on it)."""
        with self._wake:
            for lpar_uuid, owner in list(self._pending.items()):
                if owner == instance_uuid:
                    del self._pending[lpar_uuid]
        try:
            self.store_api.delete(instance_uuid)
        except NvramError as exc:
            LOG.warning("Could not remove the saved NVRAM of instance %s: %s", instance_uuid, exc)
