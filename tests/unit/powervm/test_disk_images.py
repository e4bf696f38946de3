"""What a boot-disk backend refuses before anything is created."""

from __future__ import annotations

import types

import pytest

from ibmvirt.powervm import exceptions as pvm_exc
from ibmvirt.powervm.disk import GB, localdisk


def _image(size, disk_format="raw"):
    return types.SimpleNamespace(id="img-1", size=size, disk_format=disk_format)


def _disk():
    return localdisk.LocalDisk(host=None, conf=None)


@pytest.mark.parametrize("size", [1, 10 * GB])
def test_an_image_up_to_the_root_disk_is_taken(size):
    _disk().check_image(_image(size), 10)


def test_an_image_one_byte_larger_than_the_root_disk_is_refused():
    with pytest.raises(pvm_exc.ImageNotSupported, match="larger than the flavor's root disk"):
        _disk().check_image(_image(10 * GB + 1), 10)


def test_a_zero_disk_flavor_takes_the_image_size():
    _disk().check_image(_image(50 * GB), 0)


@pytest.mark.parametrize("fmt", ["qcow2", "vmdk", "iso", None])
def test_formats_the_vios_cannot_write_are_refused(fmt):
    with pytest.raises(pvm_exc.ImageNotSupported, match="supported: raw"):
        _disk().check_image(_image(GB, fmt), 10)
