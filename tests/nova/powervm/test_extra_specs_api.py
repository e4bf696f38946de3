"""The powervm:* extra specs through the real Nova API: the validator that the
``nova.api.extra_spec_validators`` entry point loads refuses bad values with a
400 naming the key, refuses unknown powervm: keys, and stores good ones."""

from nova.tests.functional.api import client

from ibmvirt.sandbox import harness


class TestPowerVMExtraSpecsAPI(harness.SingleComputeTestBase):
    # Only the API matters here; any compute driver will do.
    compute_driver = "fake.SmallFakeDriver"

    def setUp(self):
        super().setUp()
        self.flavor = self.api.post_flavor(
            {"flavor": {"name": "pvm", "ram": 2048, "vcpus": 2, "disk": 10}}
        )

    def _refused(self, specs):
        exc = self.assertRaises(
            client.OpenStackApiException,
            self.api.post_extra_spec,
            self.flavor["id"],
            {"extra_specs": specs},
        )
        self.assertEqual(400, exc.response.status_code)
        return exc.response.text

    def test_bad_value_is_refused_naming_the_key(self):
        text = self._refused({"powervm:proc_units": "abc"})
        self.assertIn("powervm:proc_units", text)
        self.assertIn("abc", text)
        self.assertIn("0.05", text)  # what is allowed
        self.assertNotIn("powervm:proc_units", self.api.get_extra_specs(self.flavor["id"]))

    def test_value_off_the_rule_is_refused(self):
        self.assertIn("powervm:proc_units", self._refused({"powervm:proc_units": "0.07"}))
        self.assertIn("powervm:shared_weight", self._refused({"powervm:shared_weight": "256"}))
        self.assertIn(
            "powervm:shared_proc_pool_name",
            self._refused({"powervm:shared_proc_pool_name": "p" * 15}),
        )

    def test_unknown_powervm_key_is_refused(self):
        self.assertIn("powervm:foo", self._refused({"powervm:foo": "1"}))

    def test_key_pypowervm_cannot_apply_is_refused(self):
        text = self._refused({"powervm:enforce_affinity_check": "true"})
        self.assertIn("powervm:enforce_affinity_check", text)
        self.assertIn("not supported", text)

    def test_good_values_are_stored(self):
        specs = {
            "powervm:proc_units": "0.05",
            "powervm:max_proc_units": "2",
            "powervm:shared_weight": "255",
            "powervm:availability_priority": "0",
            "powervm:uncapped": "true",
            "powervm:processor_compatibility": "POWER6+",
            "powervm:shared_proc_pool_name": "p" * 14,
            "powervm:min_mem": "256",
            "powervm:srr_capability": "false",
            "powervm:ppt_ratio": "1:4096",
            "powervm:secure_boot": "9",
        }
        self.api.post_extra_spec(self.flavor["id"], {"extra_specs": specs})
        self.assertEqual(specs, self.api.get_extra_specs(self.flavor["id"]))
        # A single key through PUT is checked by the same rule.
        self.api.put_extra_spec(
            self.flavor["id"], "powervm:dedicated_proc", {"powervm:dedicated_proc": "yes"}
        )
        exc = self.assertRaises(
            client.OpenStackApiException,
            self.api.put_extra_spec,
            self.flavor["id"],
            "powervm:dedicated_proc",
            {"powervm:dedicated_proc": "maybe"},
        )
        self.assertEqual(400, exc.response.status_code)
        self.assertIn("powervm:dedicated_proc", exc.response.text)
