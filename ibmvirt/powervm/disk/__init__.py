"""Boot disks of image-booted instances: one interface, one module per backend.

``localdisk`` keeps them as logical volumes in a VIOS volume group, ``ssp`` as
linked clones in a Shared Storage Pool. Both stream the Glance image through
pypowervm's upload (never staged on the compute host) and map the disk to the
LPAR through the operation's VIOS FeedTask.
"""

from __future__ import annotations

import abc
import copy
from dataclasses import dataclass

from nova.image import glance
from oslo_config import cfg
from pypowervm.tasks import scsi_mapper as pvm_map

from ibmvirt.powervm import exceptions as pvm_exc

GB = 1024**3


@dataclass(frozen=True)
class Capabilities:
    #: The disk survives the host (another host can boot it: cold migration, evacuate).
    shared_storage: bool
    #: Cached images that Nova's image cache manager should age out.
    has_imagecache: bool
    #: The boot disk can be read for a snapshot.
    snapshot: bool


class GlanceImageFile:
    """A Glance image download as the file-like object pypowervm's upload reads."""

    def __init__(self, context, image_id: str) -> None:
        self._chunks = iter(glance.API().download(context, image_id))
        self._pending = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._pending) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._pending += chunk
        if size < 0:
            size = len(self._pending)
        out, self._pending = self._pending[:size], self._pending[size:]
        return out


class DiskDriver(abc.ABC):
    """What spawn, destroy and snapshot need from a boot-disk backend."""

    name: str
    capabilities: Capabilities
    #: Glance disk formats the VIOS can write as they are (no conversion).
    image_formats: frozenset[str] = frozenset({"raw"})

    def __init__(self, host, conf: cfg.ConfigOpts) -> None:
        self.host = host
        self.conf = conf

    @property
    def adapter(self):
        return self.host.adapter

    @abc.abstractmethod
    def check(self) -> None:
        """Find the storage ([powervm] options); ConfigError naming the option."""

    @property
    @abc.abstractmethod
    def vios_uuids(self) -> list[str]:
        """VIOSes through which boot disks are mapped."""

    @abc.abstractmethod
    def capacity_gb(self) -> tuple[float, float]:
        """(total, used) GB of the storage boot disks come from."""

    @abc.abstractmethod
    def create_from_image(self, context, instance, image_meta, size_gb: int):
        """Create the instance's boot disk holding the image; returns its storage element."""

    @abc.abstractmethod
    def find_boot_disk(self, instance):
        """The instance's boot disk, or None."""

    @abc.abstractmethod
    def delete_boot_disk(self, instance) -> None:
        """Delete the instance's boot disk (fine if there is none); unmapped first."""

    @abc.abstractmethod
    def boot_disk_name(self, instance) -> str:
        """The name the instance's boot disk has (or would have)."""

    @abc.abstractmethod
    def is_boot_disk(self, instance, storage) -> bool:
        """Whether a mapped storage element is this instance's boot disk."""

    @abc.abstractmethod
    def storage_id(self) -> str:
        """Names the storage boot disks live on: equal on two hosts exactly when
        a boot disk made on one can be found and mapped on the other."""

    @abc.abstractmethod
    def extend_boot_disk(self, instance, size_gb: int) -> bool:
        """Grow the instance's boot disk to ``size_gb`` (never shrinks it);
        False if it was that big already."""

    # -- rescue: a second disk from an image, booted instead of the boot disk --

    @abc.abstractmethod
    def create_rescue_disk(self, context, instance, image_meta):
        """Create the instance's rescue disk holding the image (its own size);
        returns its storage element."""

    @abc.abstractmethod
    def find_rescue_disk(self, instance):
        """The instance's rescue disk, or None."""

    @abc.abstractmethod
    def delete_rescue_disk(self, instance) -> None:
        """Delete the instance's rescue disk (fine if there is none); unmapped first."""

    @abc.abstractmethod
    def rescue_disk_name(self, instance) -> str:
        """The name the instance's rescue disk has (or would have)."""

    def is_rescue_disk(self, instance, storage) -> bool:
        """Whether a mapped storage element is this instance's rescue disk."""
        return getattr(storage, "name", None) == self.rescue_disk_name(instance)

    @staticmethod
    def size_gb(disk) -> float:
        """The size of a boot disk (a VDisk's or LU's capacity) in GB."""
        return float(disk.capacity)

    def check_image(self, image_meta, size_gb: int) -> None:
        """Refuse an image this backend cannot boot, saying why."""
        fmt = getattr(image_meta, "disk_format", None)
        if fmt not in self.image_formats:
            raise pvm_exc.ImageNotSupported(
                image_id=getattr(image_meta, "id", "?"),
                reason=f"disk_format {fmt!r} cannot be written to a PowerVM {self.name} disk; "
                f"supported: {', '.join(sorted(self.image_formats))}",
            )
        size = getattr(image_meta, "size", 0) or 0
        if size_gb and size > size_gb * GB:
            raise pvm_exc.ImageNotSupported(
                image_id=getattr(image_meta, "id", "?"),
                reason=f"the image ({size} bytes) is larger than the flavor's root disk "
                f"({size_gb} GB)",
            )

    def add_connect(self, ftsk, lpar_uuid: str, disk) -> None:
        """Map ``disk`` to the LPAR on each of this backend's VIOSes (in ``ftsk``).

        Each VIOS's mapping gets its own copy of the storage element: pypowervm
        puts the wrapper's XML element itself into the mapping, and an lxml
        element has one parent, so with the VIOSes updated in parallel one
        VIOS's request could go out with the element already moved to another
        VIOS's mapping (an empty Storage: the disk mapped on one VIOS only).
        """
        host_uuid = self.host.uuid
        for vios_uuid in self.vios_uuids:

            def connect(vios_w, vios_uuid=vios_uuid):
                mine = copy.deepcopy(disk)
                mapping = pvm_map.build_vscsi_mapping(host_uuid, vios_w, lpar_uuid, mine)
                return pvm_map.add_map(vios_w, mapping) is not None

            ftsk.wrapper_tasks[vios_uuid].add_functor_subtask(connect)


def load(name: str, host, conf: cfg.ConfigOpts) -> DiskDriver:
    """The disk driver ``[powervm] disk_driver`` names."""
    if name == "ssp":
        from ibmvirt.powervm.disk import ssp

        return ssp.SSPDisk(host, conf)
    from ibmvirt.powervm.disk import localdisk

    return localdisk.LocalDisk(host, conf)
