"""The Android module's noise generator and bundle loader, compiled with kotlinc and run with JUnit 4 against the
contract vectors and the real default bundle (org.json is Android's own, Debian's libandroid-json-java; the
module's other files need the Android SDK and ONNX Runtime Android: see bindings/android/README.md)."""
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ANDROID = REPO / "bindings" / "android"
JARS = ["/usr/share/java/junit4.jar", "/usr/share/java/hamcrest-core.jar", "/usr/share/java/kotlin-stdlib.jar",
        "/usr/share/java/com.android.json.jar"]
SOURCES = ["main/kotlin/dev/igredge/Noise.kt", "main/kotlin/dev/igredge/Bundle.kt",
           "test/kotlin/dev/igredge/NoiseTest.kt", "test/kotlin/dev/igredge/BundleTest.kt"]


def test_the_kotlin_noise_generator_and_bundle_loader_pass_their_junit_tests(tmp_path):
    if shutil.which("kotlinc") is None or not all(Path(j).is_file() for j in JARS):
        pytest.skip("kotlinc / JUnit 4 / org.json not installed (make test installs them: apt-get install kotlin "
                    "junit4 libandroid-json-java)")
    jar = tmp_path / "igredge-tests.jar"
    built = subprocess.run(["kotlinc", *(str(ANDROID / "src" / s) for s in SOURCES), "-cp",
                            f"{JARS[0]}:{JARS[3]}", "-d", str(jar)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    ran = subprocess.run(["java", "-cp", ":".join([str(jar), *JARS]), f"-Digr.contract={ANDROID.parent / 'contract'}",
                          f"-Digr.bundle={REPO / 'igr_edge' / 'bundles' / 'default'}", "org.junit.runner.JUnitCore",
                          "dev.igredge.NoiseTest", "dev.igredge.BundleTest"], capture_output=True, text=True,
                         timeout=300)
    assert ran.returncode == 0 and "OK (9 tests)" in ran.stdout, ran.stdout[-3000:] + ran.stderr[-2000:]
