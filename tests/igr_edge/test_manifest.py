"""The manifest reader refuses what the schema and the bundle's own figures do not allow, with a BundleError."""
import json
import shutil
from pathlib import Path

import pytest

from igr_edge.errors import BundleError
from igr_edge.manifest import read_manifest
from igr_edge.schedulers import NoiseSchedule

DEFAULT = Path(__file__).resolve().parents[2] / "igr_edge" / "bundles" / "default"


@pytest.fixture
def bundle(tmp_path):
    shutil.copytree(DEFAULT, tmp_path / "b")
    return tmp_path / "b"


def _edit(bundle, change):
    manifest = json.loads((bundle / "manifest.json").read_text())
    change(manifest)
    (bundle / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(schema="1.0.0\n"), "does not match"),
    (lambda m: m.update(name="../evil"), "does not match"),
    (lambda m: m.update(default_variant="onnx-fp32"), "default_variant"),
    (lambda m: m["scheduler"].update(timesteps=[999]), r"timesteps has 1 entries for \d+ steps"),
    (lambda m: m["scheduler"].update(zero_snr="yes"), r"scheduler.zero_snr: expected boolean"),
    (lambda m: m.update(latent=[4, 32]), "latent must be"),
    (lambda m: m["variants"][m["default_variant"]]["files"].update(student="../../x.onnx"), "leaves the bundle"),
    (lambda m: m.update(surprise=1), "unknown field"),
    (lambda m: m.pop("files"), "missing 'files'"),
])
def test_inconsistent_manifests_are_refused(bundle, change, message):
    read_manifest(bundle, verify=False)
    _edit(bundle, change)
    with pytest.raises(BundleError, match=message):
        read_manifest(bundle, verify=False)


def test_deep_nesting_and_garbage_are_bundle_errors(bundle):
    (bundle / "manifest.json").write_text('{"schema": "1.0.0", "provenance": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(BundleError):
        read_manifest(bundle)
    (bundle / "manifest.json").write_bytes(b"\xff\xfe not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        read_manifest(bundle)
    (bundle / "manifest.json").unlink()
    with pytest.raises(BundleError, match="no manifest.json"):
        read_manifest(bundle)


@pytest.mark.parametrize("zero_snr", (True, False, None))
def test_the_zero_snr_flag_survives_a_manifest_round_trip(bundle, zero_snr):
    if zero_snr is not None:
        _edit(bundle, lambda m: m["scheduler"].update(zero_snr=zero_snr))
    else:                                    # None: a manifest written before the key, read as False
        _edit(bundle, lambda m: m["scheduler"].pop("zero_snr", None))
    section = read_manifest(bundle, verify=False)["scheduler"]
    assert ("zero_snr" in section) == (zero_snr is not None)
    schedule = NoiseSchedule.from_manifest(section)
    assert schedule.zero_snr is bool(zero_snr)
    assert bool(schedule.alphas_cumprod()[-1] == 0.0) is bool(zero_snr)  # zero terminal SNR: ᾱ_T = 0


def test_a_bundle_that_requires_what_this_sdk_lacks_is_refused_by_name(bundle):
    from igr_edge.bundle import FEATURES, Bundle

    _edit(bundle, lambda m: m.update(requires=["zero-snr", "warp-drive"]))
    with pytest.raises(BundleError, match=r"requires warp-drive, which igr-edge .* does not implement.*upgrade"):
        Bundle.load(bundle, verify=False)
    _edit(bundle, lambda m: m.update(requires=list(FEATURES)))
    assert Bundle.load(bundle, verify=False).manifest["requires"] == list(FEATURES)   # single-call: no prior graph
    _edit(bundle, lambda m: m.update(requires="zero-snr"))
    with pytest.raises(BundleError, match="requires: expected array"):
        Bundle.load(bundle, verify=False)
