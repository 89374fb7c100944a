"""The conda environment for `--sdm conda` parses, names every package the code imports, and pins the
versions the tests ran with (envs/constraints.txt)."""
from __future__ import annotations

import ast
import re
import sys

import yaml

from conftest import ROOT

ENV = ROOT / "envs" / "deltaspace.yaml"
# import name -> (conda package, PyPI distribution in constraints.txt)
PACKAGES = {"torch": ("pytorch", "torch"), "yaml": ("pyyaml", "PyYAML"),
            "markdown_it": ("markdown-it-py", "markdown-it-py")}


def imported_modules() -> set[str]:
    """Top-level modules imported anywhere in the library and the rule scripts (function bodies too)."""
    names = set()
    for path in [*(ROOT / "workflow" / "deltaspace").rglob("*.py"), *(ROOT / "workflow" / "scripts").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"deltaspace", "__future__"}


def conda_pins() -> dict[str, str]:
    env = yaml.safe_load(ENV.read_text())
    assert env["name"] == "deltaspace" and "conda-forge" in env["channels"]
    pins = {}
    for dep in env["dependencies"]:
        if isinstance(dep, str):
            name, _, version = dep.partition("=")
            pins[name] = version
    return pins


def constraints() -> dict[str, str]:
    """What envs/install.sh installs: torch pinned in the script itself, the rest in constraints.txt."""
    lines = (ROOT / "envs" / "constraints.txt").read_text().splitlines()
    pins = dict(line.split("==", 1) for line in lines if re.match(r"^[A-Za-z0-9_.-]+==", line))
    pins["torch"] = re.search(r"torch==([0-9.]+)", (ROOT / "envs" / "install.sh").read_text()).group(1)
    return pins


def test_every_imported_package_is_in_the_conda_env():
    pins = conda_pins()
    modules = imported_modules()
    assert {"torch", "transformers", "peft", "pandas", "numpy", "matplotlib"} <= modules  # the scan works
    missing = [m for m in modules if PACKAGES.get(m, (m,))[0] not in pins]
    assert not missing, f"imported but not in {ENV.name}: {missing}"
    assert "tabulate" in pins and "pyarrow" in pins  # used through pandas (to_markdown, to_parquet)


def test_conda_pins_are_the_tested_versions():
    pins, tested = conda_pins(), constraints()
    assert pins.pop("python") == "3.11" and pins.pop("pip") == ""
    for conda_name, version in pins.items():
        pypi = next((p for p, (c, _) in PACKAGES.items() if c == conda_name), conda_name)
        dist = PACKAGES.get(pypi, (conda_name, conda_name))[1]
        assert version and version == tested[dist], f"{conda_name}={version}, tests ran with {dist}=={tested[dist]}"
