"""Config drives as virtual optical media in a VIOS media repository.

The ISO is built with Nova's own config-drive builder, uploaded into the
repository (created in ``[powervm] vopt_media_volume_group`` when no VIOS has
one) as ``cfg_<instance uuid>.iso`` and mapped to the LPAR. Removed on
destroy; optionally ejected some minutes after boot.
"""

from __future__ import annotations

import copy
import os
import tempfile

from nova.api.metadata import base as instance_metadata
from nova.virt import configdrive
from oslo_config import cfg
from oslo_log import log as logging
from pypowervm import exceptions as pvm_ex
from pypowervm.tasks import scsi_mapper as pvm_map
from pypowervm.tasks import storage as pvm_stg
from pypowervm.tasks import vopt as pvm_vopt
from pypowervm.wrappers import storage as pvm_stor
from pypowervm.wrappers import virtual_io_server as pvm_vios

from ibmvirt.powervm import exceptions as pvm_exc
from ibmvirt.powervm import files

LOG = logging.getLogger(__name__)


def media_name(instance) -> str:
    return f"cfg_{instance.uuid.replace('-', '')}.iso"


def _network_info_for_guest(network_info):
    """cloud-init knows no PowerVM VIF types: present every non-ovs VIF as 'vif'."""
    if not network_info:
        return network_info
    sanitized = copy.deepcopy(network_info)
    for vif in sanitized:
        if vif["type"] != "ovs":
            vif["type"] = "vif"
    return sanitized


def check_repository(adapter, conf: cfg.ConfigOpts) -> str:
    """Where config drives will go, without creating anything (ibmvirt-preflight).

    The search is pypowervm's own (validate_vopt_repo_exists without its
    create step); ConfigError names the option when no repository can exist.
    """
    vg_name = conf.powervm.vopt_media_volume_group
    size = conf.powervm.vopt_media_rep_size
    found_vg, found_vios, conf_vg, conf_vios = pvm_vopt._find_vopt_repo_data(adapter, vg_name)
    if found_vg is not None:
        return f"repository {found_vg.vmedia_repos[0].name} in {found_vios.name}/{found_vg.name}"
    if conf_vg is None:
        raise pvm_exc.ConfigError(
            option="vopt_media_volume_group",
            reason=f"no VIOS has a virtual media repository, nor a volume group {vg_name!r} "
            "to create one in; name an existing volume group",
        )
    if float(conf_vg.available_size) < size:
        raise pvm_exc.ConfigError(
            option="vopt_media_rep_size",
            reason=f"{size} GB do not fit in {conf_vios.name}/{conf_vg.name} "
            f"({conf_vg.available_size} GB free)",
        )
    return f"none yet; the first config drive creates one ({size} GB) in {conf_vios.name}/{vg_name}"


class ConfigDrive:
    """Builds, uploads, maps and removes an instance's config drive."""

    def __init__(self, adapter, host_uuid: str, conf: cfg.ConfigOpts) -> None:
        self.adapter = adapter
        self.host_uuid = host_uuid
        self.conf = conf
        self._repo: tuple[str, str] | None = None

    def repository(self) -> tuple[str, str]:
        """(VIOS UUID, VG UUID) of the media repository, created when missing."""
        if self._repo is None:
            self._repo = pvm_vopt.validate_vopt_repo_exists(
                self.adapter,
                self.conf.powervm.vopt_media_volume_group,
                self.conf.powervm.vopt_media_rep_size,
            )
        return self._repo

    def create(self, instance, injected_files, network_info, admin_pass) -> pvm_stor.VOptMedia:
        """Build the ISO and upload it into the repository; returns the media."""
        vios_uuid, _ = self.repository()
        md = instance_metadata.InstanceMetadata(
            instance,
            content=injected_files,
            extra_md={"admin_pass": admin_pass} if admin_pass else {},
            network_info=_network_info_for_guest(network_info),
        )
        with tempfile.TemporaryDirectory(prefix="ibmvirt-cfgdrv-") as tmp:
            path = os.path.join(tmp, "config.iso")
            with configdrive.ConfigDriveBuilder(instance_md=md) as builder:
                builder.make_drive(path)
            size = os.path.getsize(path)
            with open(path, "rb") as iso:
                vopt, leftover = pvm_stg.upload_vopt(
                    self.adapter, vios_uuid, iso, media_name(instance), f_size=size
                )
        files.delete_leftover(leftover, media_name(instance))
        return vopt

    def add_connect(self, ftsk, lpar_uuid: str, vopt) -> None:
        vios_uuid, _ = self.repository()
        host_uuid = self.host_uuid

        def connect(vwrap):
            mapping = pvm_map.build_vscsi_mapping(host_uuid, vwrap, lpar_uuid, vopt)
            return pvm_map.add_map(vwrap, mapping) is not None

        ftsk.wrapper_tasks[vios_uuid].add_functor_subtask(connect)

    def delete(self, instance) -> None:
        """Remove the instance's media from the repository (unmapped first); idempotent."""
        name = media_name(instance)
        for vios_w in pvm_vios.VIOS.get(self.adapter, xag=[]):
            for vg in pvm_stor.VG.get(self.adapter, parent=vios_w):
                repos = vg.vmedia_repos
                if not repos:
                    continue
                media = [m for m in repos[0].optical_media if m.media_name == name]
                if media:
                    try:
                        pvm_stg.rm_vg_storage(vg, vopts=media)
                    except pvm_ex.Error as exc:
                        LOG.warning("Could not remove config drive %s: %s", name, exc)
                        raise
                    return

    @staticmethod
    def is_media_of(instance, storage) -> bool:
        return isinstance(storage, pvm_stor.VOptMedia) and storage.media_name == media_name(
            instance
        )
