"""The ``powervm:*`` flavor extra specs: one table of keys and value rules.

The table is read twice: by the Nova API, which loads :func:`register` through
the ``nova.api.extra_spec_validators`` entry point (so ``openstack flavor set
--property powervm:proc_units=abc`` is a 400 naming the key, and an unknown
``powervm:`` key is a 400 too), and by :mod:`ibmvirt.powervm.flavor` at spawn,
which parses each value with the same rule before handing it to pypowervm. A
value the API accepts is therefore a value spawn can apply; rules that depend
on the host (the logical memory block size, the host's compatibility modes and
capabilities) or on other keys can only be checked at spawn.

This module imports neither pypowervm nor the driver: nova-api loads it.
"""

from __future__ import annotations

import dataclasses
import decimal
import re
import typing as ty

from nova import exception
from nova.api.validation.extra_specs import base
from oslo_utils import strutils

NAMESPACE = "powervm"


class InvalidExtraSpec(exception.ValidationError):
    """A ``powervm:*`` extra spec whose value cannot be applied.

    A ValidationError (an ``Invalid``, HTTP 400) so that the API validator can
    raise it as it is; at spawn the same type names the key, the value and
    what is allowed, so an operator can fix the flavor.
    """

    msg_fmt = "Flavor extra spec %(key)s='%(value)s' is invalid: %(reason)s"

    def __init__(self, key: str, value: ty.Any, reason: str) -> None:
        self.key = key
        self.value = value
        self.reason = reason
        super().__init__(key=key, value=value, reason=reason)


# ---- value rules ----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class IntRule:
    """A whole number within optional bounds."""

    minimum: int | None = None
    maximum: int | None = None
    nova_type: ty.ClassVar[type] = int

    @property
    def allowed(self) -> str:
        if self.minimum is not None and self.maximum is not None:
            return f"an integer from {self.minimum} to {self.maximum}"
        if self.minimum is not None:
            return f"an integer of at least {self.minimum}"
        return "an integer"

    def parse(self, key: str, raw: str) -> int:
        if not re.fullmatch(r"-?[0-9]+", raw):
            raise InvalidExtraSpec(key, raw, f"not an integer; allowed: {self.allowed}")
        value = int(raw)
        if (self.minimum is not None and value < self.minimum) or (
            self.maximum is not None and value > self.maximum
        ):
            raise InvalidExtraSpec(key, raw, f"out of range; allowed: {self.allowed}")
        return value


@dataclasses.dataclass(frozen=True)
class BoolRule:
    """A boolean as Nova spells them (true/false, yes/no, on/off, 1/0)."""

    nova_type: ty.ClassVar[type] = bool
    allowed: ty.ClassVar[str] = "a boolean (true or false)"

    def parse(self, key: str, raw: str) -> bool:
        try:
            return strutils.bool_from_string(raw, strict=True)
        except ValueError:
            raise InvalidExtraSpec(key, raw, f"allowed: {self.allowed}") from None


@dataclasses.dataclass(frozen=True)
class ChoiceRule:
    """One of fixed spellings; each maps to the value given to the builder."""

    choices: tuple[tuple[str, str], ...]
    nova_type: ty.ClassVar[type] = str

    @property
    def allowed(self) -> str:
        return "one of " + ", ".join(c for c, _ in self.choices)

    def parse(self, key: str, raw: str) -> str:
        for spelling, value in self.choices:
            if raw == spelling:
                return value
        raise InvalidExtraSpec(key, raw, f"allowed: {self.allowed}")


@dataclasses.dataclass(frozen=True)
class ProcUnitsRule:
    """Processing units: a decimal number, at least and in steps of 0.05.

    (Firmware 7.5 and older had steps of 0.1; the POWER8 and later systems
    NovaLink manages use 0.05.)
    """

    step: ty.ClassVar[decimal.Decimal] = decimal.Decimal("0.05")
    nova_type: ty.ClassVar[type] = str
    allowed: ty.ClassVar[str] = "a decimal number of at least 0.05, in steps of 0.05 (e.g. 0.25)"

    def parse(self, key: str, raw: str) -> float:
        if not re.fullmatch(r"[0-9]+(\.[0-9]+)?", raw):
            raise InvalidExtraSpec(key, raw, f"not a number; allowed: {self.allowed}")
        value = decimal.Decimal(raw)
        if value < self.step or value % self.step:
            raise InvalidExtraSpec(key, raw, f"allowed: {self.allowed}")
        return float(value)


@dataclasses.dataclass(frozen=True)
class NameRule:
    """A name of 1 to ``max_len`` characters, no surrounding blanks."""

    max_len: int
    nova_type: ty.ClassVar[type] = str

    @property
    def allowed(self) -> str:
        return f"a name of 1 to {self.max_len} characters"

    def parse(self, key: str, raw: str) -> str:
        if not raw or len(raw) > self.max_len or raw != raw.strip():
            raise InvalidExtraSpec(key, raw, f"allowed: {self.allowed}")
        return raw


@dataclasses.dataclass(frozen=True)
class RefusedRule:
    """A key of the old driver that this one cannot apply: refused, never dropped."""

    reason: str
    nova_type: ty.ClassVar[type] = str

    @property
    def allowed(self) -> str:
        return f"nothing: {self.reason}"

    def parse(self, key: str, raw: str) -> ty.NoReturn:
        raise InvalidExtraSpec(key, raw, self.reason)


Rule = IntRule | BoolRule | ChoiceRule | ProcUnitsRule | NameRule | RefusedRule


@dataclasses.dataclass(frozen=True)
class Spec:
    key: str
    rule: Rule
    description: str


def _plus(mode: str) -> tuple[str, str]:
    return (mode, mode.replace("+", "_Plus"))


#: pypowervm 1.1.27 ``LPARCompat.ALL_VALUES`` (its builder refuses anything
#: else), also spelt with ``+`` as the old driver's users wrote them.
PROC_COMPAT_MODES = (
    "default",
    "POWER6",
    "POWER6_Plus",
    "POWER6_Plus_Enhanced",
    "POWER7",
    "POWER8",
    "POWER8_Enhanced",
    "POWER9_Base",
    "POWER9",
    "POWER9_Enhanced",
    "POWER10",
)
_PROC_COMPAT_CHOICES = tuple(_plus(m.replace("_Plus", "+")) for m in PROC_COMPAT_MODES) + tuple(
    (m, m) for m in PROC_COMPAT_MODES if "_Plus" in m
)
#: Names of the dedicated processor sharing modes (their pypowervm value is
#: looked up by flavor.py).
DEDICATED_SHARING_MODES = (
    "share_idle_procs",
    "keep_idle_procs",
    "share_idle_procs_active",
    "share_idle_procs_always",
)
#: pypowervm ``lpar_builder.ALLOWED_PPT_RATIOS`` keys.
PPT_RATIOS = ("1:64", "1:128", "1:256", "1:512", "1:1024", "1:2048", "1:4096")

_MEM = IntRule(minimum=256)
_VCPU = IntRule(minimum=1)
_PU = ProcUnitsRule()
_BOOL = BoolRule()
_0_255 = IntRule(minimum=0, maximum=255)

SPECS: dict[str, Spec] = {
    s.key: s
    for s in (
        Spec(
            "powervm:min_mem",
            _MEM,
            "Minimum memory (MB) of the LPAR, to which it can be shrunk while it runs; "
            "defaults to the flavor's memory. A multiple of the host's logical memory "
            "block size, at most the flavor's memory.",
        ),
        Spec(
            "powervm:max_mem",
            _MEM,
            "Maximum memory (MB) the LPAR can grow to while it runs; defaults to the "
            "flavor's memory. A multiple of the host's logical memory block size, at "
            "least the flavor's memory.",
        ),
        Spec(
            "powervm:min_vcpu",
            _VCPU,
            "Minimum virtual processors; defaults to the flavor's vCPUs, at most that.",
        ),
        Spec(
            "powervm:max_vcpu",
            _VCPU,
            "Maximum virtual processors; defaults to the flavor's vCPUs, at least that.",
        ),
        Spec(
            "powervm:proc_units",
            _PU,
            "Processing units of a shared-processor LPAR; defaults to vCPUs times "
            "[powervm]proc_units_factor. Between 0.05 and 1.0 per virtual processor.",
        ),
        Spec(
            "powervm:min_proc_units",
            _PU,
            "Minimum processing units; defaults to powervm:proc_units.",
        ),
        Spec(
            "powervm:max_proc_units",
            _PU,
            "Maximum processing units; defaults to powervm:proc_units.",
        ),
        Spec(
            "powervm:dedicated_proc",
            _BOOL,
            "Whole dedicated processors (the flavor's vCPUs) instead of shared "
            "processing units; defaults to false.",
        ),
        Spec(
            "powervm:shared_weight",
            _0_255,
            "Uncapped weight of a shared-processor LPAR; defaults to "
            "[powervm]uncapped_proc_weight. Only for uncapped LPARs.",
        ),
        Spec(
            "powervm:availability_priority",
            _0_255,
            "Priority of the LPAR for keeping its processors when a processor fails; "
            "defaults to 127.",
        ),
        Spec(
            "powervm:uncapped",
            _BOOL,
            "Whether a shared-processor LPAR may use idle cycles beyond its processing "
            "units; defaults to true. Only for shared processors.",
        ),
        Spec(
            "powervm:dedicated_sharing_mode",
            ChoiceRule(tuple((m, m) for m in DEDICATED_SHARING_MODES)),
            "Whether the idle cycles of dedicated processors are lent to shared "
            "processors; defaults to share_idle_procs. Needs powervm:dedicated_proc=true.",
        ),
        Spec(
            "powervm:processor_compatibility",
            ChoiceRule(_PROC_COMPAT_CHOICES),
            "Processor compatibility mode the LPAR boots in ('+' may be written '_Plus'); "
            "defaults to default. The host must support the mode.",
        ),
        Spec(
            "powervm:shared_proc_pool_name",
            NameRule(max_len=14),
            "Name of the shared processor pool of a shared-processor LPAR; defaults to "
            "the default pool. Exactly one pool of the host must have the name.",
        ),
        Spec(
            "powervm:srr_capability",
            _BOOL,
            "Simplified remote restart capability (evacuation while the host is down); "
            "defaults to true where the host supports it.",
        ),
        Spec(
            "powervm:enable_lpar_metric",
            _BOOL,
            "Whether the LPAR lets the host collect its performance data; defaults to false.",
        ),
        Spec(
            "powervm:ppt_ratio",
            ChoiceRule(tuple((r, r) for r in PPT_RATIOS)),
            "Physical page table ratio (page table size to maximum memory, used by "
            "partition mobility). The host must support setting it.",
        ),
        Spec(
            "powervm:enforce_affinity_check",
            RefusedRule(
                "not supported: pypowervm 1.1.27 has no LPAR attribute for it (its builder "
                "validates the key and drops it); the affinity check is a live migration "
                "option. Remove the key from the flavor."
            ),
            "Refused: the affinity score check is a live migration option, not an LPAR "
            "attribute pypowervm 1.1.27 can set.",
        ),
        Spec(
            "powervm:secure_boot",
            IntRule(minimum=0, maximum=9),
            "Secure boot policy (0 off, 1 log only, 2 enforced, 3-9 enforced with "
            "firmware/OS specific measures); defaults to 0. AIX/Linux LPARs on a host "
            "capable of secure boot only.",
        ),
    )
}


def parse(key: str, raw: ty.Any) -> ty.Any:
    """The typed value of one ``powervm:*`` extra spec; InvalidExtraSpec if refused."""
    spec = SPECS.get(key)
    if spec is None:
        raise InvalidExtraSpec(
            key,
            raw,
            "unknown PowerVM extra spec; the known ones are " + ", ".join(sorted(SPECS)),
        )
    return spec.rule.parse(key, str(raw))


# ---- Nova API -------------------------------------------------------------------------------
@dataclasses.dataclass
class _Validator(base.ExtraSpecValidator):
    """Nova's validator with our rule, so that the API's message names the key
    (Nova's own messages name only the value)."""

    rule: Rule | None = None

    def validate(self, name: str, value: ty.Any) -> None:
        assert self.rule is not None
        self.rule.parse(name, str(value))


def _nova_value(rule: Rule) -> dict[str, ty.Any]:
    value: dict[str, ty.Any] = {"type": rule.nova_type, "description": rule.allowed}
    if isinstance(rule, IntRule):
        value.update(
            {k: v for k, v in (("min", rule.minimum), ("max", rule.maximum)) if v is not None}
        )
    elif isinstance(rule, ChoiceRule):
        value["enum"] = tuple(c for c, _ in rule.choices)
    return value


def register() -> list[base.ExtraSpecValidator]:
    """The ``powervm`` namespace for Nova's extra spec validation (entry point)."""
    return [
        _Validator(name=s.key, description=s.description, value=_nova_value(s.rule), rule=s.rule)
        for s in SPECS.values()
    ]
