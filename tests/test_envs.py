"""The conda envs of the rules pin the same versions as pyproject.toml."""
import re
import tomllib

import yaml

from conftest import REPO


def requirement_name(spec):
    return re.split(r"[<>=!~ ]", spec, maxsplit=1)[0].lower().replace("_", "-")


def test_env_pins_agree_with_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = {requirement_name(r): r.replace(" ", "") for r in project["dependencies"]}
    envs = sorted((REPO / "envs").glob("*.yaml"))
    assert len(envs) >= 3
    checked = 0
    for env in envs:
        dependencies = yaml.safe_load(env.read_text())["dependencies"]
        pip = next(d["pip"] for d in dependencies if isinstance(d, dict))
        for spec in pip:
            if spec.startswith("-e"):
                continue
            name = requirement_name(spec)
            assert name in pins, f"{env.name}: {spec} is not a dependency in pyproject.toml"
            assert spec.replace(" ", "") == pins[name], f"{env.name}: {spec} != pyproject {pins[name]}"
            checked += 1
    assert checked > 20
