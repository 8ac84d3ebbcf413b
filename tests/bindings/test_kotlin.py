"""The Android module's noise generator, compiled with kotlinc and run with JUnit 4 against the contract vectors
(the module's other files need the Android SDK and ONNX Runtime Android: see bindings/android/README.md)."""
import shutil
import subprocess
from pathlib import Path

import pytest

ANDROID = Path(__file__).resolve().parents[2] / "bindings" / "android"
JARS = ["/usr/share/java/junit4.jar", "/usr/share/java/hamcrest-core.jar", "/usr/share/java/kotlin-stdlib.jar"]


def test_the_kotlin_noise_generator_passes_its_junit_tests(tmp_path):
    if shutil.which("kotlinc") is None or not all(Path(j).is_file() for j in JARS):
        pytest.skip("kotlinc / JUnit 4 not installed (make test installs them: apt-get install kotlin junit4)")
    jar = tmp_path / "noise.jar"
    sources = [ANDROID / "src/main/kotlin/dev/igredge/Noise.kt", ANDROID / "src/test/kotlin/dev/igredge/NoiseTest.kt"]
    built = subprocess.run(["kotlinc", *map(str, sources), "-cp", JARS[0], "-d", str(jar)], capture_output=True,
                           text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    ran = subprocess.run(["java", "-cp", ":".join([str(jar), *JARS]), f"-Digr.contract={ANDROID.parent / 'contract'}",
                          "org.junit.runner.JUnitCore", "dev.igredge.NoiseTest"], capture_output=True, text=True,
                         timeout=300)
    assert ran.returncode == 0 and "OK (3 tests)" in ran.stdout, ran.stdout[-3000:] + ran.stderr[-2000:]
