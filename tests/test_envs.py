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


def _cv2_owners():
    from importlib import metadata

    owners = set()
    for dist in metadata.distributions():
        if any(str(f).replace("\\", "/") == "cv2/__init__.py" for f in dist.files or []):
            owners.add((dist.metadata["Name"].lower(), dist.version))
    return owners


def test_one_distribution_owns_cv2():
    """ultralytics pulls opencv-python, img2dataset opencv-python-headless: only the pinned headless stays."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pin = next(r for r in project["dependencies"] if requirement_name(r) == "opencv-python-headless")
    assert _cv2_owners() == {("opencv-python-headless", pin.split("==")[1])}
    import cv2

    assert cv2.__version__.startswith(pin.split("==")[1].rsplit(".", 1)[0])


def test_every_install_path_keeps_one_opencv():
    """`make setup` and each conda env's post-deploy script remove both wheels and put the pin back."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pin = next(r for r in project["dependencies"] if requirement_name(r) == "opencv-python-headless")
    makefile = (REPO / "Makefile").read_text()
    assert "pip uninstall --quiet -y opencv-python opencv-python-headless" in makefile
    assert makefile.index("pip install --quiet -e '.[test]'") < makefile.index("pip uninstall --quiet -y opencv-python")
    for env in sorted((REPO / "envs").glob("*.yaml")):
        script = env.with_name(env.stem + ".post-deploy.sh")
        assert script.is_file(), f"{script.name} missing"
        text = script.read_text()
        assert "uninstall --quiet -y opencv-python opencv-python-headless" in text and f'"{pin}"' in text
