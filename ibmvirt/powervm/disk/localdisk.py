"""Boot disks as logical volumes in one VIOS volume group (``disk_driver = localdisk``).

The group may also be a file-backed one on a NovaLink partition that hosts
I/O: its virtual disks are files (BackStoreType ``user:qcow``), created,
copied, grown and removed through the same VolumeGroup requests, so nothing
here differs; growing one on resize is allowed (nova-powervm refused it).

Each image is uploaded once into the volume group as ``i_<image id>`` (the
cache Nova's image cache manager ages out); a boot disk ``b_<instance uuid>``
is a copy of it, and so is a rescue disk ``r_<instance uuid>`` (as big as the
image). Names are cut to the 15 characters a logical volume may have.
"""

from __future__ import annotations

import time

from oslo_concurrency import lockutils
from oslo_log import log as logging
from pypowervm import exceptions as pvm_ex
from pypowervm.tasks import storage as pvm_stg
from pypowervm.utils import transaction as pvm_tx
from pypowervm.wrappers import storage as pvm_stor
from pypowervm.wrappers import virtual_io_server as pvm_vios

from ibmvirt.powervm import exceptions as pvm_exc
from ibmvirt.powervm import files
from ibmvirt.powervm.disk import GB, Capabilities, DiskDriver, GlanceImageFile

LOG = logging.getLogger(__name__)

LV_NAME_MAX = 15
IMAGE_PREFIX = "i_"
BOOT_PREFIX = "b_"
RESCUE_PREFIX = "r_"


def image_disk_name(image_id: str) -> str:
    return (IMAGE_PREFIX + image_id.replace("-", ""))[:LV_NAME_MAX]


def boot_disk_name(instance) -> str:
    return (BOOT_PREFIX + instance.uuid.replace("-", ""))[:LV_NAME_MAX]


def rescue_disk_name(instance) -> str:
    return (RESCUE_PREFIX + instance.uuid.replace("-", ""))[:LV_NAME_MAX]


class LocalDisk(DiskDriver):
    name = "localdisk"
    capabilities = Capabilities(shared_storage=False, has_imagecache=True, snapshot=True)

    def __init__(self, host, conf) -> None:
        super().__init__(host, conf)
        self.vios_uuid: str | None = None
        self.vg_uuid: str | None = None
        self.vg_name: str | None = None
        #: Cached image disk name -> when this process first saw it unused.
        self._unused_since: dict[str, float] = {}

    def check(self) -> None:
        wanted = self.conf.powervm.volume_group_name
        found = []
        for vios_w in pvm_vios.VIOS.get(self.adapter, xag=[]):
            for vg_w in pvm_stor.VG.get(self.adapter, parent=vios_w):
                if (wanted and vg_w.name == wanted) or (not wanted and vg_w.name != "rootvg"):
                    found.append((vios_w, vg_w))
        if len(found) != 1:
            if wanted:
                reason = (
                    f"no volume group {wanted!r} on this host's VIOSes"
                    if not found
                    else f"{len(found)} VIOSes have a volume group {wanted!r}"
                )
            else:
                reason = (
                    "empty, and the VIOSes have "
                    f"{len(found)} volume groups other than rootvg"
                    f"{': ' + ', '.join(f'{v.name}/{g.name}' for v, g in found) if found else ''}"
                    "; name one"
                )
            raise pvm_exc.ConfigError(option="volume_group_name", reason=reason)
        vios_w, vg_w = found[0]
        self.vios_uuid, self.vg_uuid, self.vg_name = vios_w.uuid, vg_w.uuid, vg_w.name
        LOG.info("Boot disks go to volume group %s on VIOS %s", vg_w.name, vios_w.name)

    @property
    def vios_uuids(self) -> list[str]:
        return [self.vios_uuid]

    def _vg(self) -> pvm_stor.VG:
        return pvm_stor.VG.get(
            self.adapter, uuid=self.vg_uuid, parent_type=pvm_vios.VIOS, parent_uuid=self.vios_uuid
        )

    def capacity_gb(self) -> tuple[float, float]:
        vg = self._vg()
        return float(vg.capacity), float(vg.capacity) - float(vg.available_size)

    def _image_disk(self, context, image_meta) -> pvm_stor.VDisk:
        name = image_disk_name(image_meta.id)
        with lockutils.lock(f"powervm-image-{image_meta.id}"):
            existing = [d for d in self._vg().virtual_disks if d.name == name]
            if existing:
                return existing[0]
            LOG.info("Uploading image %s into volume group %s", image_meta.id, self.vg_name)
            vdisk, leftover = pvm_stg.upload_new_vdisk(
                self.adapter,
                self.vios_uuid,
                self.vg_uuid,
                GlanceImageFile(context, image_meta.id),
                name,
                image_meta.size,
                file_format=pvm_stor.FileFormatType.RAW,
            )
            files.delete_leftover(leftover, f"image {image_meta.id}")
            return vdisk

    def create_from_image(self, context, instance, image_meta, size_gb: int):
        image = self._image_disk(context, image_meta)
        return pvm_stg.crt_copy_vdisk(
            self.adapter,
            self.vios_uuid,
            self.vg_uuid,
            image.udid,
            image_meta.size,
            boot_disk_name(instance),
            d_size=max(size_gb * GB, image_meta.size),
        )

    def create_rescue_disk(self, context, instance, image_meta):
        """A copy of the cached image, as big as the image."""
        image = self._image_disk(context, image_meta)
        return pvm_stg.crt_copy_vdisk(
            self.adapter,
            self.vios_uuid,
            self.vg_uuid,
            image.udid,
            image_meta.size,
            rescue_disk_name(instance),
            d_size=image_meta.size,
        )

    def boot_disk_name(self, instance) -> str:
        return boot_disk_name(instance)

    def rescue_disk_name(self, instance) -> str:
        return rescue_disk_name(instance)

    def _find(self, name: str):
        return next((d for d in self._vg().virtual_disks if d.name == name), None)

    def find_boot_disk(self, instance):
        return self._find(boot_disk_name(instance))

    def find_rescue_disk(self, instance):
        return self._find(rescue_disk_name(instance))

    def is_boot_disk(self, instance, storage) -> bool:
        return isinstance(storage, pvm_stor.VDisk) and storage.name == boot_disk_name(instance)

    def storage_id(self) -> str:
        """A volume group of one VIOS of one system: shared with no other host."""
        return f"localdisk:{self.host.uuid}/{self.vg_uuid}"

    def extend_boot_disk(self, instance, size_gb: int) -> bool:
        """The logical volume (or file) grows in place; the guest sees the new
        size at its next boot."""
        name = boot_disk_name(instance)
        grown = []

        def grow(vg):
            disk = next((d for d in vg.virtual_disks if d.name == name), None)
            if disk is None:
                raise pvm_exc.BootDiskMissing(disk=name, where=f"volume group {self.vg_name}")
            if disk.capacity >= size_gb:
                return False
            disk.capacity = size_gb
            grown.append(disk.name)
            return True

        getter = pvm_stor.VG.getter(
            self.adapter,
            entry_uuid=self.vg_uuid,
            parent_class=pvm_vios.VIOS,
            parent_uuid=self.vios_uuid,
        )
        wtsk = pvm_tx.WrapperTask(f"extend_{name}", getter)
        wtsk.add_functor_subtask(grow)
        wtsk.execute()
        return bool(grown)

    def _delete(self, name: str) -> None:
        vg = self._vg()
        disks = [d for d in vg.virtual_disks if d.name == name]
        if disks:
            pvm_stg.rm_vg_storage(vg, vdisks=disks)

    def delete_boot_disk(self, instance) -> None:
        self._delete(boot_disk_name(instance))

    def delete_rescue_disk(self, instance) -> None:
        self._delete(rescue_disk_name(instance))

    def is_rescue_disk(self, instance, storage) -> bool:
        return isinstance(storage, pvm_stor.VDisk) and storage.name == rescue_disk_name(instance)

    # -- image cache (Nova's image cache manager) ------------------------------

    def cached_images(self) -> dict[str, pvm_stor.VDisk]:
        """Cached image disks by name."""
        return {d.name: d for d in self._vg().virtual_disks if d.name.startswith(IMAGE_PREFIX)}

    def remove_unused_images(self, used_image_ids: set[str], min_age: float) -> list[str]:
        """Delete cached image disks no instance of this host has used for
        ``min_age`` seconds (Nova's remove_unused_original_minimum_age_seconds).

        When an image became unused is known from the earlier passes of this
        process; after a restart the clock starts again (images are kept longer,
        never removed early).
        """
        used = {image_disk_name(i) for i in used_image_ids}
        vg = self._vg()
        now = time.monotonic()
        cached = {d.name: d for d in vg.virtual_disks if d.name.startswith(IMAGE_PREFIX)}
        for name in used | (set(self._unused_since) - set(cached)):
            self._unused_since.pop(name, None)
        for name in set(cached) - used:
            self._unused_since.setdefault(name, now)
        expired = [
            cached[n]
            for n, since in self._unused_since.items()
            if n in cached and now - since >= min_age
        ]
        if expired:
            try:
                pvm_stg.rm_vg_storage(vg, vdisks=expired)
            except pvm_ex.Error as exc:
                LOG.warning("Could not remove unused cached images: %s", exc)
                return []
            for d in expired:
                self._unused_since.pop(d.name, None)
        return [d.name for d in expired]
