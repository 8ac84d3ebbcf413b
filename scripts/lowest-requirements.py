"""The lowest versions pyproject.toml allows the runtime SDK, as pins: what `make test-compat` installs.

    python scripts/lowest-requirements.py > lowest.txt     # numpy==1.23.2, pillow==..., one a line

Every runtime dependency needs a `>=` floor (an upper cap after it is allowed). Run by the compat venv's Python, it
also checks that this Python is the oldest requires-python allows, so the job tests the floor and not whichever
Python 3 happens to be first on PATH."""
from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
pins = []
for dep in project["dependencies"]:
    floor = re.fullmatch(r"\s*([A-Za-z0-9._-]+)\s*>=\s*([0-9][0-9.]*)\s*(,\s*<[^;]*)?", dep)
    if floor is None:
        sys.exit(f"lowest-requirements: {dep!r} in pyproject.toml has no `>=` floor; give each runtime dependency one")
    pins.append(f"{floor[1]}=={floor[2]}")
oldest = re.fullmatch(r">=\s*3\.(\d+)", project["requires-python"])
if oldest is None:
    sys.exit(f"lowest-requirements: requires-python {project['requires-python']!r} is not of the form >=3.N")
if sys.version_info[:2] != (3, int(oldest[1])):
    sys.exit(f"lowest-requirements: requires-python is {project['requires-python']} but this is Python "
             f"{sys.version_info[0]}.{sys.version_info[1]}; run it with Python 3.{oldest[1]} (make COMPAT_PYTHON=...)")
print("\n".join(pins))
