"""Boot disks as linked clones in a Shared Storage Pool (``disk_driver = ssp``).

An image is uploaded once per cluster as the image LU ``image_<image id>``
(:mod:`~ibmvirt.powervm.disk.ssp_image` coordinates hosts that upload the same
image at once through marker LUs). A boot disk ``boot_<instance uuid>`` is a linked clone of it,
mapped through every VIOS of this host in the cluster (multipath); a rescue disk
``rescue_<instance uuid>`` is one too, as big as the image.
"""

from __future__ import annotations

from oslo_log import log as logging
from pypowervm import const as pvm_const
from pypowervm import util as pvm_util
from pypowervm.tasks import storage as pvm_stg
from pypowervm.wrappers import cluster as pvm_clust
from pypowervm.wrappers import job as pvm_job
from pypowervm.wrappers import storage as pvm_stor

from ibmvirt.powervm import exceptions as pvm_exc
from ibmvirt.powervm.disk import GB, Capabilities, DiskDriver, GlanceImageFile, ssp_image

LOG = logging.getLogger(__name__)

IMAGE_PREFIX = "image_"
BOOT_PREFIX = "boot_"
RESCUE_PREFIX = "rescue_"


def image_lu_name(image_id: str) -> str:
    """As pypowervm's get_or_upload_image_lu stores it (``-`` becomes ``_``)."""
    return pvm_util.sanitize_file_name_for_api(IMAGE_PREFIX + image_id)


def boot_lu_name(instance) -> str:
    return BOOT_PREFIX + instance.uuid


def rescue_lu_name(instance) -> str:
    return RESCUE_PREFIX + instance.uuid


class SSPDisk(DiskDriver):
    name = "ssp"
    capabilities = Capabilities(shared_storage=True, has_imagecache=False, snapshot=True)

    def __init__(self, host, conf) -> None:
        super().__init__(host, conf)
        self.cluster: pvm_clust.Cluster | None = None
        self.ssp_uuid: str | None = None
        self._vios_uuids: list[str] = []

    def check(self) -> None:
        wanted = self.conf.powervm.cluster_name
        clusters = (
            pvm_clust.Cluster.search(self.adapter, name=wanted)
            if wanted
            else pvm_clust.Cluster.get(self.adapter)
        )
        if len(clusters) != 1:
            known = pvm_clust.Cluster.get(self.adapter) if wanted else clusters
            names = ", ".join(c.name for c in known) or "none"
            raise pvm_exc.ConfigError(
                option="cluster_name",
                reason=f"no cluster named {wanted!r} (clusters: {names})"
                if wanted
                else f"empty, and this host's VIOSes are in {len(clusters)} clusters "
                f"({names}); name one",
            )
        self.cluster = clusters[0]
        self.ssp_uuid = pvm_stor.SSP.get_by_href(self.adapter, self.cluster.ssp_uri).uuid
        host = self.host.uuid.upper()
        # The cluster's nodes on this host: the VIOS link names this managed system.
        self._vios_uuids = [
            n.vios_uuid for n in self.cluster.nodes if n.vios_uri and host in n.vios_uri.upper()
        ]
        if not self._vios_uuids:
            raise pvm_exc.ConfigError(
                option="cluster_name",
                reason=f"cluster {self.cluster.name!r} has no node on this host's VIOSes",
            )

    @property
    def vios_uuids(self) -> list[str]:
        return list(self._vios_uuids)

    def _ssp(self) -> pvm_stor.SSP:
        return pvm_stor.SSP.get(self.adapter, uuid=self.ssp_uuid)

    def _tier(self):
        return pvm_stg.default_tier_for_ssp(self._ssp())

    def capacity_gb(self) -> tuple[float, float]:
        ssp = self._ssp()
        return float(ssp.capacity), float(ssp.capacity) - float(ssp.free_space)

    def _clone(self, context, image_meta, name: str, size_gb: int):
        tier = self._tier()
        image_lu = ssp_image.get_or_upload(
            tier,
            image_lu_name(image_meta.id),
            self._vios_uuids[0],
            lambda: GlanceImageFile(context, image_meta.id),
            image_meta.size,
        )
        size = max(size_gb, -(-image_meta.size // GB))
        _, lu = pvm_stg.crt_lu(tier, name, size, typ=pvm_stor.LUType.DISK, clone=image_lu)
        return lu

    def create_from_image(self, context, instance, image_meta, size_gb: int):
        return self._clone(context, image_meta, boot_lu_name(instance), size_gb)

    def create_rescue_disk(self, context, instance, image_meta):
        """A linked clone of the image LU, as big as the image (at least 1 GB)."""
        return self._clone(context, image_meta, rescue_lu_name(instance), 0)

    def _lus_named(self, name: str) -> list:
        return [
            lu for lu in pvm_stor.LUEnt.get(self.adapter, parent=self._tier()) if lu.name == name
        ]

    def _boot_lus(self, instance) -> list:
        return self._lus_named(boot_lu_name(instance))

    def rescue_disk_name(self, instance) -> str:
        return rescue_lu_name(instance)

    def find_rescue_disk(self, instance):
        lus = self._lus_named(rescue_lu_name(instance))
        return lus[0] if lus else None

    def is_rescue_disk(self, instance, storage) -> bool:
        return isinstance(
            storage, (pvm_stor.LU, pvm_stor.LUEnt)
        ) and storage.name == rescue_lu_name(instance)

    def delete_rescue_disk(self, instance) -> None:
        self._delete(rescue_lu_name(instance))

    def boot_disk_name(self, instance) -> str:
        return boot_lu_name(instance)

    def find_boot_disk(self, instance):
        lus = self._boot_lus(instance)
        return lus[0] if lus else None

    def is_boot_disk(self, instance, storage) -> bool:
        return isinstance(storage, (pvm_stor.LU, pvm_stor.LUEnt)) and storage.name == boot_lu_name(
            instance
        )

    def storage_id(self) -> str:
        """The pool: every host of the cluster sees the same SSP (same UUID)."""
        return f"ssp:{self.ssp_uuid}"

    def extend_boot_disk(self, instance, size_gb: int) -> bool:
        """The logical unit grows in place (the cluster's GrowLogicalUnit job,
        ``lu -resize``), for every host of the cluster at once; a linked clone
        stays a clone of its image."""
        name = boot_lu_name(instance)
        lu = self.find_boot_disk(instance)
        if lu is None:
            raise pvm_exc.BootDiskMissing(disk=name, where=f"cluster {self.cluster.name}")
        if lu.capacity >= size_gb:
            return False
        # The cluster's GrowLogicalUnit job (an LU's size is create-only in its schema).
        job = pvm_job.Job.wrap(
            self.adapter.read(
                pvm_clust.Cluster.schema_type,
                self.cluster.uuid,
                suffix_type=pvm_const.SUFFIX_TYPE_DO,
                suffix_parm="GrowLogicalUnit",
            )
        )
        job.run_job(
            self.cluster.uuid,
            job_parms=[
                job.create_job_parameter("LogicalUnitUDID", lu.udid),
                job.create_job_parameter("Capacity", str(size_gb)),
            ],
        )
        return True

    def delete_boot_disk(self, instance) -> None:
        self._delete(boot_lu_name(instance))

    def _delete(self, name: str) -> None:
        tier = self._tier()
        lus = [lu for lu in pvm_stor.LUEnt.get(self.adapter, parent=tier)]
        mine = [lu for lu in lus if lu.name == name]
        if mine:
            # The image LU stays: other hosts of the cluster may clone it next.
            pvm_stg.rm_tier_storage(mine, lufeed=lus, del_unused_images=False)
