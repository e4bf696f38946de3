"""Nova's driver capability keys, all off: each driver turns on what it does.

Listing every key keeps a driver from inheriting a default it never meant
(ComputeDriver's own defaults change between Nova releases).
"""

from __future__ import annotations

IMAGE_TYPES = ("aki", "ami", "ari", "iso", "qcow2", "raw", "vdi", "vhd", "vhdx", "vmdk", "ploop")

NONE: dict[str, bool] = {
    "has_imagecache": False,
    "supports_evacuate": False,
    "supports_migrate_to_same_host": False,
    "supports_attach_interface": False,
    "supports_device_tagging": False,
    "supports_tagged_attach_interface": False,
    "supports_tagged_attach_volume": False,
    "supports_extend_volume": False,
    "supports_multiattach": False,
    "supports_trusted_certs": False,
    "supports_pcpus": False,
    "supports_accelerators": False,
    "supports_remote_managed_ports": False,
    "supports_address_space_passthrough": False,
    "supports_address_space_emulated": False,
    "supports_stateless_firmware": False,
    "supports_virtio_fs": False,
    "supports_mem_backing_file": False,
    **{f"supports_image_type_{t}": False for t in IMAGE_TYPES},
}


def with_(**enabled: bool) -> dict[str, bool]:
    """All capabilities off except ``enabled``; unknown keys are a typo."""
    unknown = set(enabled) - set(NONE)
    if unknown:
        raise KeyError(f"not a Nova driver capability: {sorted(unknown)}")
    return {**NONE, **enabled}
