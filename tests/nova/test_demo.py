"""`make demo` runs what it promises, as a separate process like the Makefile's:
both parts (DPM, then PowerVM) succeed, print their steps and leave nothing."""

import io
import os
import re
import subprocess
import sys

import pytest

from ibmvirt.emulators.faults import RequestRecord

#: One step line: title, seconds, requests, optional (jobs / polls), result.
STEP = re.compile(r"^  (?P<title>\S.*?)\s+(?P<secs>\d+\.\d\d) s\s+(?P<requests>\d+)(?P<rest>.*)$")


@pytest.fixture(scope="module")
def demo():
    result = subprocess.run(
        [sys.executable, "-m", "ibmvirt.cmd.sandbox", "demo"],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, OS_NOVA_DISABLE_EVENTLET_PATCHING="1"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "ibmvirt demo 2/2" in out, out
    dpm, powervm = out.split("ibmvirt demo 2/2")
    return out, dpm, powervm


def _steps(part: str) -> dict[str, tuple[int, str]]:
    """Requests and the rest of the line, by step title."""
    steps = {}
    for line in part.splitlines():
        m = STEP.match(line)
        if m:
            steps[m["title"]] = (int(m["requests"]), m["rest"])
    return steps


def test_demo_prints_only_its_story_and_ends_done(demo):
    out, _, _ = demo
    assert out.startswith("ibmvirt demo 1/2: IBM Z DPM driver")
    assert out.rstrip().splitlines()[-1].startswith("done in")
    assert "part 1 done in" in out and "part 2 done in" in out
    assert "thread pool" not in out
    # No log line reaches stdout (oslo.log's handler is sent to stderr).
    assert not re.search(r"^\d{4}-\d\d-\d\d ", out, re.M), out


def test_demo_walks_a_dpm_server_through_its_life_and_cleans_up(demo):
    _, dpm, _ = demo
    steps = _steps(dpm)
    for step in (
        "boot server from an FCP volume",
        "stop",
        "reboot (hard)",
        "console log",
        "attach a data volume",
        "detach the interface",
        "delete",
    ):
        assert step in steps, dpm
    assert "job polls" in steps["boot server from an FCP volume"][1]
    assert "left on the HMC: nothing" in dpm


def test_demo_walks_a_powervm_server_through_its_life_and_cleans_up(demo):
    _, _, pvm = demo
    assert "PowerVM driver in Nova 34, emulated NovaLink host" in pvm
    assert "managed system pvm-host-1 (8408-E8E*10678CV)" in pvm
    # 40 processor units / proc_units_factor 0.1
    assert "offers 400 VCPUs" in pvm
    steps = _steps(pvm)
    assert list(steps) == [
        "start Nova and nova-compute",
        "boot from image on localdisk",
        "stop",
        "start",
        "reboot (soft)",
        "reboot (hard)",
        "attach a data volume (vSCSI)",
        "detach the data volume",
        "delete",
        "total",
    ], pvm
    for title, (requests, _) in steps.items():
        assert requests > 0, title
    assert "ACTIVE" in steps["boot from image on localdisk"][1]
    assert "(1 job)" in steps["boot from image on localdisk"][1]
    assert "SHUTOFF" in steps["stop"][1]
    # LUA recovery per VIOS, nothing else: the demo host takes no iSCSI volumes
    # ([powervm] iscsi_volumes = False), so Cinder's connector carries no iSCSI
    # initiator and none is read (ibmvirt.powervm.volume.connector)
    assert "(2 jobs)" in steps["attach a data volume (vSCSI)"][1]
    # What the host shows after the boot: the LPAR, its disk, adapters, mappings.
    assert re.search(r"LPAR instance-0000000\d \(id \d+\): running", pvm)
    assert re.search(r"boot disk b_[0-9a-f]{13}, copied from the cached image i_", pvm)
    assert "VLAN 2001 (the port)" in pvm and "VLAN 4094 (RMC)" in pvm
    lines = pvm.splitlines()
    stop = next(i for i, line in enumerate(lines) if line.startswith("  stop "))
    assert lines[stop + 1].strip() == "LPAR not activated"
    mappings = [line for line in lines if "vSCSI mappings" in line]
    assert re.search(r"vios1: b_\w+, vios1: cfg_\w+\.iso$", mappings[0])
    # After attach the LUN is mapped through both VIOSes; after detach it is gone.
    assert re.search(r"vios1: hdisk\d+, vios2: hdisk\d+$", mappings[1])
    assert "hdisk" not in mappings[2]
    assert "left on the host: nothing (the cached image i_" in pvm
    assert "event feed reads in the background" in pvm


def test_step_printer_counts_requests_jobs_and_polls():
    """The printer both parts share (in-process, no emulator)."""
    from ibmvirt.sandbox.demo import Steps

    log: list[RequestRecord] = []
    out = io.StringIO()
    steps = Steps(
        out,
        lambda: log,
        lambda r: r.path.startswith("/jobs/"),
        "NovaLink requests",
        is_job=lambda r: "/do/" in r.path,
    )
    steps.run(
        "power on",
        lambda: log.extend(
            [RequestRecord("PUT", "/lpar/do/PowerOn", 200), RequestRecord("GET", "/jobs/1", 200)]
        ),
    )
    steps.run("read", lambda: log.append(RequestRecord("GET", "/lpar", 200)), lambda _: "ok")
    steps.detail("LPAR running")
    steps.total()
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["step", "time", "NovaLink", "requests", "result"]
    assert re.match(r"  power on\s+\d+\.\d\d s    2 \(1 job, 1 polls\)\s*$", lines[1])
    assert re.match(r"  read\s+\d+\.\d\d s    1\s+ ok$", lines[2])
    assert lines[3] == "      LPAR running"
    assert re.match(r"  total\s+\d+\.\d\d s    3$", lines[5])
    assert [(t, n, p) for t, _, n, p in steps.results] == [("power on", 2, 1), ("read", 1, 0)]
