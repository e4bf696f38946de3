"""`make demo` runs what it promises, as a separate process like the Makefile's."""

import os
import subprocess
import sys


def test_demo_walks_a_server_through_its_life_and_cleans_up():
    result = subprocess.run(
        [sys.executable, "-m", "ibmvirt.cmd.sandbox", "demo"],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, OS_NOVA_DISABLE_EVENTLET_PATCHING="1"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for step in (
        "boot server from an FCP volume",
        "stop",
        "reboot (hard)",
        "console log",
        "attach a data volume",
        "detach the interface",
        "delete",
    ):
        assert step in out
    assert "left on the HMC: nothing" in out
    assert out.rstrip().splitlines()[-1].startswith("done in")
    assert "thread pool" not in out
