"""Spawn failures at every NovaLink request, ETag conflicts, busy VIOSes and
session expiry, through the Nova API."""

from __future__ import annotations

import re

from ibmvirt.sandbox import powervm

_ID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|/\d+(?=/|$|\?)"
)
#: Requests that are not the spawn's own: the event feed's long poll, logon, job polls.
_BACKGROUND = re.compile(r"/rest/api/(uom/Event|web/Logon|uom/jobs/)")
#: Nova's state reads once spawn has returned: one LPAR's quick property, or all
#: of them at once when events marked several stale meanwhile (timing decides).
_STATE_READS = re.compile(r"/quick/")
#: Deleting an upload's temporary File artifact (not a step of the spawn itself).
_FILE_CLEANUP = re.compile(r"^\^/rest/api/web/File/\[")


def request_pattern(target: str) -> str:
    """A regex for this request path with every object id generalised."""
    path = target.split("?")[0]
    out, pos = "^", 0
    for m in _ID.finditer(path):
        out += re.escape(path[pos : m.start()]) + (
            "/\\d+" if m.group().startswith("/") else "[^/]+"
        )
        pos = m.end()
    return out + re.escape(path[pos:]) + r"(\?|$)"


class TestSpawnFailures(powervm.PowerVMSingleComputeTestBase):
    def setUp(self):
        super().setUp()
        # One compute: a failed build goes to ERROR instead of being rescheduled.
        self.flags(max_attempts=1, group="scheduler")

    def _boot(self, expected_state="ACTIVE"):
        return self.boot_from_image(
            [{"port": self.neutron.port_1["id"]}], expected_state=expected_state, config_drive=True
        )

    def _leftovers(self) -> dict:
        view = self.nl_view
        return {
            "lpars": view.lpars(),
            "boot disks": [d for d in view.virtual_disks() if d.startswith("b_")],
            "media": [m for m in view.optical_media() if m.startswith("cfg_")],
            "mappings": view.scsi_mappings(),
            "adapters": view.client_macs(),
        }

    def _spawn_requests(self) -> list[tuple[str, str]]:
        """The requests of a spawn whose image is cached (the upload: see below)."""
        self._delete_server(self._boot())
        log = self.nl_control.log
        start = len(log.records())
        server = self._boot()
        records = log.records()[start:]
        self._delete_server(server)
        return [
            (r.method, request_pattern(r.path))
            for r in records
            if not _BACKGROUND.search(r.path) and not _STATE_READS.search(r.path)
        ]

    def test_a_failure_at_any_spawn_request_leaves_nothing_behind(self):
        empty = self._leftovers()
        requests = self._spawn_requests()
        self.assertGreater(len(requests), 8)
        for i, (method, pattern) in enumerate(requests):
            with self.subTest(request=f"{method} {pattern}"):
                nth = requests[: i + 1].count((method, pattern))
                rule = self.nl_control.injector.add(
                    method, pattern, nth=nth, status=500, message="[EMUL0099] injected failure"
                )
                if _FILE_CLEANUP.search(pattern):
                    # Deleting an upload's File artifact is retried: the server comes up.
                    server = self._boot()
                    self.assertEqual({}, self.novalink.emu.files)
                else:
                    server = self._boot(expected_state="ERROR")
                    self.assertIn("injected failure", server["fault"]["message"])
                    self.assertEqual(empty, self._leftovers())
                self.nl_control.injector.reset()
                self.assertEqual(1, rule.fired, "the faulted request was never made")
                self._delete_server(server)
                self.assertEqual(empty, self._leftovers())
                self.assertEqual({}, self.novalink.emu.files)

    def test_a_failed_image_upload_leaves_no_disk(self):
        empty = self._leftovers()
        disks = self.nl_view.virtual_disks()
        rule = self.nl_control.injector.add(
            "PUT", r"/web/File/contents/", status=500, message="[EMUL0099] upload broke"
        )
        server = self._boot(expected_state="ERROR")
        self.assertEqual(1, rule.fired)
        self.assertIn("upload broke", server["fault"]["message"])
        self.assertEqual(empty, self._leftovers())
        self.assertEqual(disks, self.nl_view.virtual_disks())  # no half-cached image
        self._delete_server(server)
        self.nl_control.injector.reset()
        server = self._boot()  # and the next spawn uploads it again
        self.assertEqual("ACTIVE", server["status"])

    def test_a_failed_state_read_after_spawn_is_retried(self):
        """Nova reads the new LPAR's state once spawn returned; one lost read
        must not fail a build that worked."""
        self._delete_server(self._boot())  # the image is cached
        rule = self.nl_control.injector.add(
            "GET", r"/quick/", status=500, message="[EMUL0099] state read failed"
        )
        server = self._boot()
        self.assertEqual(1, rule.fired)
        self.assertEqual("ACTIVE", server["status"])
