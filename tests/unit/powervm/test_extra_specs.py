"""The powervm:* rules: each key at its boundaries, as spawn parses it and as
the Nova API validator (loaded through the entry point) checks it."""

from __future__ import annotations

import pytest
from nova import exception
from nova.api.validation.extra_specs import validators as nova_validators
from pypowervm.utils import lpar_builder as lb
from pypowervm.wrappers import base_partition as pvm_bp

from ibmvirt.powervm import extra_specs as es
from ibmvirt.powervm import flavor

# (key, accepted raw -> parsed value, refused raws): the limits themselves are
# accepted, one step past them refused.
CASES = [
    ("powervm:min_mem", {"256": 256, "4096": 4096}, ["255", "abc", "1.5", "", " 512"]),
    ("powervm:max_mem", {"256": 256}, ["255", "-256", "big"]),
    ("powervm:min_vcpu", {"1": 1, "64": 64}, ["0", "-1", "one"]),
    ("powervm:max_vcpu", {"1": 1}, ["0", "2.0"]),
    ("powervm:proc_units", {"0.05": 0.05, "1": 1.0, "1.25": 1.25}, ["0.04", "0.07", "abc", "0"]),
    ("powervm:min_proc_units", {"0.05": 0.05, "0.10": 0.1}, ["0.0", "0.049", ".5"]),
    ("powervm:max_proc_units", {"64.00": 64.0}, ["1e2", "-1.0", "0.33"]),
    ("powervm:dedicated_proc", {"true": True, "False": False, "yes": True}, ["maybe", "2"]),
    ("powervm:uncapped", {"true": True, "0": False}, ["uncapped"]),
    ("powervm:srr_capability", {"on": True, "off": False}, ["sometimes"]),
    ("powervm:enable_lpar_metric", {"true": True, "no": False}, ["enabled"]),
    ("powervm:shared_weight", {"0": 0, "255": 255}, ["-1", "256", "high"]),
    ("powervm:availability_priority", {"0": 0, "255": 255}, ["-1", "256"]),
    (
        "powervm:dedicated_sharing_mode",
        {m: m for m in es.DEDICATED_SHARING_MODES},
        ["share", "sre idle proces", "Keep_idle_procs"],
    ),
    (
        "powervm:processor_compatibility",
        {
            "default": "default",
            "POWER6+": "POWER6_Plus",
            "POWER6+_Enhanced": "POWER6_Plus_Enhanced",
            "POWER6_Plus": "POWER6_Plus",
            "POWER10": "POWER10",
        },
        # POWER6_Enhanced was in the old validator; pypowervm 1.1.27 has no such mode.
        ["POWER6_Enhanced", "power8", "POWER11", "POWER6++"],
    ),
    ("powervm:shared_proc_pool_name", {"p": "p", "p" * 14: "p" * 14}, ["", "p" * 15, " pool"]),
    ("powervm:ppt_ratio", {"1:64": "1:64", "1:4096": "1:4096"}, ["1:32", "1:8192", "64"]),
    ("powervm:secure_boot", {"0": 0, "9": 9}, ["-1", "10", "on"]),
    ("powervm:enforce_affinity_check", {}, ["true", "false"]),
]


def test_cases_cover_the_whole_table():
    assert sorted(k for k, _, _ in CASES) == sorted(es.SPECS)


@pytest.mark.parametrize(("key", "good", "bad"), CASES, ids=[c[0] for c in CASES])
def test_limits_are_accepted_and_one_past_refused(key, good, bad):
    for raw, parsed in good.items():
        value = es.parse(key, raw)
        assert value == parsed and type(value) is type(parsed), raw
        nova_validators.validate(key, raw)  # the API accepts what spawn accepts
    for raw in bad:
        with pytest.raises(es.InvalidExtraSpec) as err:
            es.parse(key, raw)
        e = err.value
        assert (e.key, e.value) == (key, raw)
        assert key in str(e) and f"'{raw}'" in str(e)
        # The API refuses the same value, naming the key, as an HTTP 400.
        with pytest.raises(exception.ValidationError) as api_err:
            nova_validators.validate(key, raw)
        assert key in api_err.value.format_message()
        assert api_err.value.code == 400


def test_message_says_what_is_allowed():
    msg = str(pytest.raises(es.InvalidExtraSpec, es.parse, "powervm:shared_weight", "256").value)
    assert msg == (
        "Flavor extra spec powervm:shared_weight='256' is invalid: out of range; "
        "allowed: an integer from 0 to 255"
    )
    msg = str(pytest.raises(es.InvalidExtraSpec, es.parse, "powervm:proc_units", "abc").value)
    assert "steps of 0.05" in msg
    msg = str(pytest.raises(es.InvalidExtraSpec, es.parse, "powervm:uncapped", "x").value)
    assert "true or false" in msg


def test_unknown_key_is_refused_by_spawn_and_api():
    with pytest.raises(es.InvalidExtraSpec) as err:
        es.parse("powervm:foo", "1")
    assert "powervm:foo" in str(err.value) and "powervm:proc_units" in str(err.value)
    with pytest.raises(exception.ValidationError) as api_err:
        nova_validators.validate("powervm:foo", "1")
    assert "powervm:foo" in api_err.value.format_message()


def test_invalid_extra_spec_is_a_nova_invalid():
    assert issubclass(es.InvalidExtraSpec, exception.ValidationError)
    assert issubclass(es.InvalidExtraSpec, exception.Invalid)
    assert flavor.InvalidExtraSpec is es.InvalidExtraSpec


def test_every_key_is_registered_with_nova():
    registered = {v.name for v in es.register()}
    assert registered == set(es.SPECS)
    assert registered <= set(nova_validators.VALIDATORS)
    assert "powervm" in nova_validators.NAMESPACES


def test_every_key_reaches_a_builder_attribute_or_is_refused():
    assert set(flavor.DIRECT) | set(flavor.DERIVED) | flavor.REFUSED == set(es.SPECS)
    assert not (set(flavor.DIRECT) & set(flavor.DERIVED))
    for key in flavor.REFUSED:
        assert isinstance(es.SPECS[key].rule, es.RefusedRule)


def test_enums_are_what_pypowervm_applies():
    assert set(es.PROC_COMPAT_MODES) == set(pvm_bp.LPARCompat.ALL_VALUES)
    parsed = {es.parse("powervm:processor_compatibility", c) for c, _ in es._PROC_COMPAT_CHOICES}
    assert parsed == set(pvm_bp.LPARCompat.ALL_VALUES)
    assert set(es.PPT_RATIOS) == set(lb.ALLOWED_PPT_RATIOS)
    assert set(flavor.DEDICATED_SHARING_MODES) == set(es.DEDICATED_SHARING_MODES)
    assert set(flavor.DEDICATED_SHARING_MODES.values()) == set(
        pvm_bp.DedicatedSharingMode.ALL_VALUES
    )
