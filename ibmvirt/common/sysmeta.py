"""Saving ``instance.system_metadata`` from inside a driver operation.

While spawn runs, the compute manager's network-allocation thread changes the
Instance object it passed the driver; saving that object from the driver races
with it ("Set changed size during iteration"). Save through a copy instead.
"""

from __future__ import annotations

from nova import objects


def save(instance, updates: dict[str, str]) -> None:
    """Merge ``updates`` into the instance's system_metadata and persist them."""
    instance.system_metadata.update(updates)
    stored = objects.Instance(context=instance._context, uuid=instance.uuid)
    stored.system_metadata = dict(instance.system_metadata)
    stored.save()
