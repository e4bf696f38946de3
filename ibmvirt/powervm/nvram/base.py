"""The interface of an NVRAM store: an LPAR's NVRAM by Nova instance UUID.

An LPAR's NVRAM (its boot list and firmware settings) lives in the
hypervisor only; a partition recreated elsewhere (evacuate, a cold migration
to another host) starts with blank NVRAM unless a copy was kept outside.
"""

from __future__ import annotations

import abc


class NvramError(Exception):
    """The store could not be reached or refused the request."""


class NvramStore(abc.ABC):
    """Where NVRAM copies are kept. Every method is idempotent."""

    #: The ``[powervm] nvram_store`` value that selects the store.
    name: str = ""

    @abc.abstractmethod
    def store(self, instance_uuid: str, data: bytes) -> bool:
        """Keep ``data``; False if the store held exactly these bytes already."""

    @abc.abstractmethod
    def fetch(self, instance_uuid: str) -> bytes | None:
        """The bytes kept for the instance, None if there are none."""

    @abc.abstractmethod
    def delete(self, instance_uuid: str) -> None:
        """Forget the instance's copy (nothing to do if there is none)."""
