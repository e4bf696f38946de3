"""A Nova flavor and image as a pypowervm LPAR: builder attributes and the wrapper.

:func:`lpar_attributes` turns the flavor (memory, vCPUs, ``powervm:*`` extra
specs) and the image (``os_distro=ibmi`` makes an IBM i LPAR) into the
attribute dict of pypowervm's ``LPARBuilder``; every value goes through the
rule of :mod:`ibmvirt.powervm.extra_specs`, the same one the Nova API
enforces, and the rules that need several keys are checked here, naming the
key. :func:`build_lpar` builds and validates the wrapper against the host
(pypowervm's standardizer and ``LPARWrapperValidator``); creating it is the
caller's step (``lpar_w.create(parent=host_w)``).
"""

from __future__ import annotations

import copy
import typing as ty
from collections.abc import Callable

from nova import exception
from pypowervm.utils import lpar_builder as lb
from pypowervm.utils import validation as pvm_val
from pypowervm.wrappers import base_partition as pvm_bp
from pypowervm.wrappers import logical_partition as pvm_lpar
from pypowervm.wrappers import shared_proc_pool as pvm_spp

from ibmvirt.powervm import extra_specs
from ibmvirt.powervm.extra_specs import InvalidExtraSpec

__all__ = [
    "InvalidExtraSpec",
    "LPARBuildFailed",
    "build_lpar",
    "check_buildable",
    "lpar_attributes",
    "rebuild_lpar",
    "shared_proc_pool_id",
]

P = extra_specs.NAMESPACE + ":"

#: Extra specs that are one builder attribute, value as parsed.
DIRECT: dict[str, str] = {
    P + "min_mem": lb.MIN_MEM,
    P + "max_mem": lb.MAX_MEM,
    P + "min_vcpu": lb.MIN_VCPU,
    P + "max_vcpu": lb.MAX_VCPU,
    P + "proc_units": lb.PROC_UNITS,
    P + "min_proc_units": lb.MIN_PROC_U,
    P + "max_proc_units": lb.MAX_PROC_U,
    P + "dedicated_proc": lb.DED_PROCS,
    P + "shared_weight": lb.UNCAPPED_WEIGHT,
    P + "availability_priority": lb.AVAIL_PRIORITY,
    P + "processor_compatibility": lb.PROC_COMPAT,
    P + "srr_capability": lb.SRR_CAPABLE,
    P + "enable_lpar_metric": lb.ENABLE_LPAR_METRIC,
    P + "ppt_ratio": lb.PPT_RATIO,
    P + "secure_boot": lb.SECURE_BOOT,
}
#: Extra specs derived into another attribute (see lpar_attributes).
DERIVED: dict[str, str] = {
    P + "uncapped": lb.SHARING_MODE,
    P + "dedicated_sharing_mode": lb.SHARING_MODE,
    P + "shared_proc_pool_name": lb.SPP,
}
#: Keys of the table that no builder attribute takes (refused by their rule).
REFUSED = frozenset({P + "enforce_affinity_check"})

DEDICATED_SHARING_MODES = {
    "share_idle_procs": pvm_bp.DedicatedSharingMode.SHARE_IDLE_PROCS,
    "keep_idle_procs": pvm_bp.DedicatedSharingMode.KEEP_IDLE_PROCS,
    "share_idle_procs_active": pvm_bp.DedicatedSharingMode.SHARE_IDLE_PROCS_ACTIVE,
    "share_idle_procs_always": pvm_bp.DedicatedSharingMode.SHARE_IDLE_PROCS_ALWAYS,
}
#: Keys that only mean something for shared processors.
SHARED_ONLY = (
    P + "proc_units",
    P + "min_proc_units",
    P + "max_proc_units",
    P + "uncapped",
    P + "shared_weight",
    P + "shared_proc_pool_name",
)


class LPARBuildFailed(exception.Invalid):
    """pypowervm refused to build or validate the LPAR for this host (the
    flavor does not fit it: memory block size, compatibility modes,
    capabilities, free resources)."""

    msg_fmt = "Cannot build LPAR %(name)s from the flavor on this host: %(reason)s"

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(name=name, reason=reason)


def _os_distro(image_meta: ty.Any) -> str | None:
    props = getattr(image_meta, "properties", None)
    if props is None:
        return None
    if isinstance(props, dict):
        return props.get("os_distro")
    return props.get("os_distro") if hasattr(props, "get") else None


def lpar_attributes(
    flavor: ty.Any,
    image_meta: ty.Any,
    *,
    name: str,
    pvm_uuid: str,
    shared_proc_pool_id: Callable[[str], int],
) -> dict[str, ty.Any]:
    """LPARBuilder attributes for a flavor and image.

    ``shared_proc_pool_id`` maps a pool name to its pool ID on the host and
    raises LookupError (its message the reason) when the host has no pool,
    or more than one, of that name; see :func:`shared_proc_pool_id`.
    Raises InvalidExtraSpec naming the key for any value that cannot apply.
    """
    specs = {k: v for k, v in (flavor.extra_specs or {}).items() if k.startswith(P)}
    vals = {k: extra_specs.parse(k, v) for k, v in specs.items()}
    mem, vcpus = int(flavor.memory_mb), int(flavor.vcpus)
    attrs: dict[str, ty.Any] = {
        lb.NAME: name,
        lb.UUID: pvm_uuid,
        lb.MEM: mem,
        lb.VCPU: vcpus,
        lb.ENV: (
            pvm_bp.LPARType.OS400 if _os_distro(image_meta) == "ibmi" else pvm_bp.LPARType.AIXLINUX
        ),
        # Every LPAR can be remote restarted (evacuated) unless the flavor says no.
        lb.SRR_CAPABLE: True,
    }
    _check_combinations(specs, vals, mem, vcpus)
    for key, value in vals.items():
        if key in DIRECT:
            attrs[DIRECT[key]] = value
    if P + "uncapped" in vals:
        attrs[lb.SHARING_MODE] = (
            pvm_bp.SharingMode.UNCAPPED if vals[P + "uncapped"] else pvm_bp.SharingMode.CAPPED
        )
    if P + "dedicated_sharing_mode" in vals:
        attrs[lb.SHARING_MODE] = DEDICATED_SHARING_MODES[vals[P + "dedicated_sharing_mode"]]
    if P + "shared_proc_pool_name" in vals:
        pool = vals[P + "shared_proc_pool_name"]
        try:
            attrs[lb.SPP] = int(shared_proc_pool_id(pool))
        except LookupError as exc:
            reason = exc.args[0] if exc.args else str(exc)
            raise InvalidExtraSpec(P + "shared_proc_pool_name", pool, reason) from exc
    return attrs


def _check_combinations(
    specs: dict[str, str], vals: dict[str, ty.Any], mem: int, vcpus: int
) -> None:
    """Rules between keys, and between keys and the flavor, named by key."""

    def refuse(key: str, reason: str) -> ty.NoReturn:
        raise InvalidExtraSpec(key, specs[key], reason)

    dedicated = vals.get(P + "dedicated_proc", False)
    if dedicated:
        for key in SHARED_ONLY:
            if key in vals:
                refuse(
                    key,
                    "applies to shared processors only, and the flavor has "
                    f"{P}dedicated_proc={specs[P + 'dedicated_proc']}; remove one of the two",
                )
    elif P + "dedicated_sharing_mode" in vals:
        refuse(
            P + "dedicated_sharing_mode",
            f"applies to dedicated processors only; also set {P}dedicated_proc=true",
        )
    if P + "shared_weight" in vals and vals.get(P + "uncapped") is False:
        refuse(
            P + "shared_weight",
            f"a capped LPAR ({P}uncapped={specs[P + 'uncapped']}) has no uncapped weight; "
            "remove one of the two",
        )

    def bounds(low: str, high: str, desired: int | float, what: str) -> None:
        if low in vals and vals[low] > desired:
            refuse(low, f"must not exceed the {what} ({desired:g})")
        if high in vals and vals[high] < desired:
            refuse(high, f"must not be below the {what} ({desired:g})")

    bounds(P + "min_mem", P + "max_mem", mem, "flavor's memory_mb")
    bounds(P + "min_vcpu", P + "max_vcpu", vcpus, "flavor's vcpus")
    units = vals.get(P + "proc_units")
    if units is not None:
        bounds(P + "min_proc_units", P + "max_proc_units", units, f"{P}proc_units")
    elif P + "min_proc_units" in vals and P + "max_proc_units" in vals:
        if vals[P + "min_proc_units"] > vals[P + "max_proc_units"]:
            refuse(P + "min_proc_units", f"must not exceed {P}max_proc_units")
    # Each virtual processor takes 0.05 to 1.0 processing units, at each of
    # minimum, desired and maximum (a missing bound defaults to the desired).
    if units is not None:
        for key, vp_key, vps in (
            (P + "min_proc_units", P + "min_vcpu", vals.get(P + "min_vcpu", vcpus)),
            (P + "proc_units", None, vcpus),
            (P + "max_proc_units", P + "max_vcpu", vals.get(P + "max_vcpu", vcpus)),
        ):
            u = vals.get(key, units)
            where = key if key in vals else P + "proc_units"
            vp_name = vp_key if vp_key and vp_key in vals else "the flavor's vcpus"
            if u > vps + 1e-9 or u < 0.05 * vps - 1e-9:
                refuse(
                    where,
                    f"{u:g} processing units for {vps} virtual processors ({vp_name}): "
                    f"allowed are 0.05 to 1.0 per virtual processor, {0.05 * vps:g} to {vps:g}",
                )


def build_lpar(
    adapter: ty.Any,
    host_wrapper: ty.Any,
    attrs: dict[str, ty.Any],
    *,
    proc_units_factor: float,
    uncapped_weight: int,
) -> pvm_lpar.LPAR:
    """The LPAR wrapper for ``attrs``, standardized and validated against the
    host, not yet created. pypowervm's refusals become LPARBuildFailed naming
    the LPAR and pypowervm's reason."""
    name = str(attrs.get(lb.NAME))
    try:
        stdz = lb.DefaultStandardize(
            host_wrapper, uncapped_weight=uncapped_weight, proc_units_factor=proc_units_factor
        )
        # The standardizer rewrites some attributes in place: give it a copy.
        lpar_w = lb.LPARBuilder(adapter, dict(attrs), stdz).build()
        pvm_val.LPARWrapperValidator(lpar_w, host_wrapper).validate_all()
    except (lb.LPARBuilderException, pvm_val.ValidatorException, ValueError, TypeError) as exc:
        raise LPARBuildFailed(name, str(exc)) from exc
    return lpar_w


def rebuild_lpar(
    adapter: ty.Any,
    host_wrapper: ty.Any,
    lpar_w: pvm_lpar.LPAR,
    attrs: dict[str, ty.Any],
    *,
    proc_units_factor: float,
    uncapped_weight: int,
) -> pvm_lpar.LPAR:
    """``lpar_w`` (an existing LPAR) with the memory, processor and general
    settings of ``attrs``, validated against the host as a resize from its
    current settings; not yet updated. Its adapters, slots and identity stay."""
    name = str(attrs.get(lb.NAME))
    current = copy.deepcopy(lpar_w)
    try:
        stdz = lb.DefaultStandardize(
            host_wrapper, uncapped_weight=uncapped_weight, proc_units_factor=proc_units_factor
        )
        max_slots = lpar_w.io_config.max_virtual_slots
        lpar_w = lb.LPARBuilder(adapter, dict(attrs), stdz).rebuild(lpar_w)
        # rebuild() sets the builder's default slot count; keep the LPAR's own.
        lpar_w.io_config.max_virtual_slots = max_slots
        # Always applied to a stopped LPAR: no DLPAR rules.
        pvm_val.LPARWrapperValidator(lpar_w, host_wrapper, cur_lpar_w=current).validate_all(
            check_dlpar=False
        )
    except (lb.LPARBuilderException, pvm_val.ValidatorException, ValueError, TypeError) as exc:
        raise LPARBuildFailed(name, str(exc)) from exc
    return lpar_w


def check_buildable(
    adapter: ty.Any,
    host_wrapper: ty.Any,
    attrs: dict[str, ty.Any],
    *,
    proc_units_factor: float,
    uncapped_weight: int,
) -> None:
    """LPARBuildFailed if pypowervm cannot build an LPAR of ``attrs`` for this
    host (free capacity aside: that is Placement's and the update's to judge)."""
    name = str(attrs.get(lb.NAME))
    try:
        stdz = lb.DefaultStandardize(
            host_wrapper, uncapped_weight=uncapped_weight, proc_units_factor=proc_units_factor
        )
        lb.LPARBuilder(adapter, dict(attrs), stdz).build()
    except (lb.LPARBuilderException, ValueError, TypeError) as exc:
        raise LPARBuildFailed(name, str(exc)) from exc


def shared_proc_pool_id(adapter: ty.Any, host_wrapper: ty.Any, name: str) -> int:
    """The ID of the host's one shared processor pool called ``name`` (the
    default pool is ``DefaultPool``, ID 0); LookupError if none or several."""
    pools = [p for p in pvm_spp.SharedProcPool.get(adapter, parent=host_wrapper) if p.name == name]
    if len(pools) != 1:
        found = "no" if not pools else f"{len(pools)}"
        raise LookupError(
            f"the host has {found} shared processor pools named {name!r}, exactly one needed"
        )
    return int(pools[0].id)
