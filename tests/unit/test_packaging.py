"""What an operator gets from a normal install: the shim, the sample config."""

import configparser
import pathlib
import subprocess
import sys
import sysconfig

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
SITE = pathlib.Path(sysconfig.get_paths()["purelib"]).resolve()


def _run_outside_tree(code: str, tmp_path) -> str:
    """Run ``code`` where the source tree is not importable: only the install is."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "OS_NOVA_DISABLE_EVENTLET_PATCHING": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_nova_loads_dpm_driver_from_installed_shim(tmp_path):
    out = _run_outside_tree(
        "import inspect\n"
        "from nova.virt import driver, virtapi\n"
        "drv = driver.load_compute_driver(virtapi.VirtAPI(), 'ibmvirt.DPMDriver')\n"
        "print(type(drv).__module__, type(drv).__name__)\n"
        "print(inspect.getfile(type(drv)))\n",
        tmp_path,
    )
    names, path = out.splitlines()[-2:]
    assert names == "ibmvirt.dpm.driver DPMDriver"
    assert pathlib.Path(path).resolve().is_relative_to(SITE)


def test_shim_does_not_replace_novas_own_packages():
    record = (SITE / "ibmvirt-0.1.0.dist-info" / "RECORD").read_text()
    shipped = {line.split(",")[0] for line in record.splitlines()}
    assert "nova/virt/ibmvirt/__init__.py" in shipped
    assert "nova/__init__.py" not in shipped
    assert "nova/virt/__init__.py" not in shipped


def test_unknown_driver_name_is_an_attribute_error():
    import nova.virt.ibmvirt as shim

    try:
        shim.NoSuchDriver  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchDriver" in str(exc)
    else:
        raise AssertionError("shim resolved a driver that does not exist")


GENERATOR_CONFS = sorted((REPO / "etc").glob("*-config-generator.conf"))


def _output_file(generator_conf: pathlib.Path) -> str:
    """The sample a generator config writes (its ``output_file``)."""
    parser = configparser.ConfigParser(strict=False)  # namespace is repeated
    parser.read(generator_conf)
    return parser["DEFAULT"]["output_file"]


def test_every_sample_has_a_generator_config():
    samples = {p.relative_to(REPO).as_posix() for p in (REPO / "etc").glob("*.sample")}
    assert samples == {_output_file(c) for c in GENERATOR_CONFS}


@pytest.mark.parametrize("generator_conf", GENERATOR_CONFS, ids=lambda p: p.name)
def test_sample_config_is_current(tmp_path, generator_conf):
    """etc/ samples are generated; regenerate with `make sample-config`."""
    sample = _output_file(generator_conf)
    generated = tmp_path / pathlib.Path(sample).name
    subprocess.run(
        [
            sys.executable,
            "-m",
            "oslo_config.generator",
            "--config-file",
            str(generator_conf),
            "--output-file",
            str(generated),
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=120,
    )
    checked_in = REPO / sample
    assert checked_in.read_text() == generated.read_text(), (
        f"{sample} is stale: run `make sample-config` and commit it"
    )


def test_both_drivers_load_through_the_shim():
    """compute_driver = ibmvirt.DPMDriver / ibmvirt.PowerVMDriver resolve as Nova loads them."""
    import nova.virt.ibmvirt as shim

    assert shim.PowerVMDriver.__module__ == "ibmvirt.powervm.driver"
    assert shim.DPMDriver.__module__ == "ibmvirt.dpm.driver"


def test_an_unknown_driver_name_is_an_attribute_error():
    import nova.virt.ibmvirt as shim

    try:
        shim.ZVMDriver  # noqa: B018
    except AttributeError:
        pass
    else:
        raise AssertionError("an unknown driver name resolved")


def test_telemetry_sample_config_is_current(tmp_path):
    """etc/ibmvirt-telemetry.conf.sample (the inspectors' options); `make sample-config`."""
    generated = tmp_path / "ibmvirt-telemetry.conf.sample"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "oslo_config.generator",
            "--config-file",
            str(REPO / "etc/ibmvirt-telemetry-config-generator.conf"),
            "--output-file",
            str(generated),
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=120,
    )
    checked_in = REPO / "etc/ibmvirt-telemetry.conf.sample"
    assert checked_in.read_text() == generated.read_text(), (
        "etc/ibmvirt-telemetry.conf.sample is stale: run `make sample-config` and commit it"
    )
