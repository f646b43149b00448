"""Packaging: the conda envs of the rules install their stage's extra with the pins of pyproject.toml."""

import re

import tomllib
import yaml
from conftest import REPO

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
CORE = PROJECT["dependencies"]
EXTRAS = PROJECT["optional-dependencies"]


def requirement_name(spec):
    return re.split(r"[<>=!~ \[]", spec, maxsplit=1)[0].lower().replace("_", "-")


def env_pip(env):
    dependencies = yaml.safe_load(env.read_text())["dependencies"]
    return next(d["pip"] for d in dependencies if isinstance(d, dict))


def test_core_is_what_every_stage_needs():
    assert {requirement_name(r) for r in CORE} >= {"pyarrow", "duckdb", "numpy", "pillow", "snakemake"}
    heavy = {"torch", "ultralytics", "transformers", "open-clip-torch", "img2dataset", "rasterio"}
    assert not heavy & {requirement_name(r) for r in CORE}, "GPU and download libraries belong in extras"
    assert {"download", "models", "rs3", "assemble", "browse", "slurm", "test", "all"} <= set(EXTRAS)


def test_all_extra_names_every_role():
    (spec,) = EXTRAS["all"]
    roles = set(re.search(r"\[(.*)\]", spec).group(1).split(","))
    assert roles == set(EXTRAS) - {"all", "test"}


def test_each_env_installs_its_extra_with_the_same_pins():
    envs = sorted((REPO / "envs").glob("*.yaml"))
    assert len(envs) >= 4
    for env in envs:
        pip = env_pip(env)
        editable = [spec for spec in pip if spec.startswith("-e")]
        assert len(editable) == 1, f"{env.name}: one `-e ..[extra]` line"
        match = re.fullmatch(r"-e \.\.\[(\w+)\]", editable[0])
        assert match, f"{env.name}: {editable[0]!r} must install one extra of the project, not everything"
        extra = match.group(1)
        assert extra in EXTRAS, f"{env.name}: no extra {extra!r} in pyproject.toml"
        expected = {requirement_name(r): r.replace(" ", "") for r in CORE + EXTRAS[extra]}
        expected.pop("snakemake")  # the env runs inside the Snakemake that planned the job
        pins = {requirement_name(s): s.replace(" ", "") for s in pip if not s.startswith("-e")}
        assert pins == expected, f"{env.name}: pins differ from pyproject's core + [{extra}]"


def test_every_rule_env_exists():
    named = set()
    for smk in (REPO / "rules").glob("*.smk"):
        named |= set(re.findall(r'"\.\./(envs/[\w.]+\.yaml)"', smk.read_text()))
    assert named and all((REPO / path).is_file() for path in named)


# The one OpenCV, pinned in every extra whose libraries import cv2 (img2dataset, ultralytics).
OPENCV_PIN = next(r for r in EXTRAS["download"] if requirement_name(r) == "opencv-python-headless")


def test_opencv_pin_is_the_same_wherever_cv2_is_needed():
    for extra in ("download", "models"):
        assert OPENCV_PIN in EXTRAS[extra], f"[{extra}] lacks {OPENCV_PIN}"


def _cv2_owners():
    from importlib import metadata

    owners = set()
    for dist in metadata.distributions():
        if any(str(f).replace("\\", "/") == "cv2/__init__.py" for f in dist.files or []):
            owners.add((dist.metadata["Name"].lower(), dist.version))
    return owners


def test_one_distribution_owns_cv2():
    """ultralytics pulls opencv-python, img2dataset opencv-python-headless: only the pinned headless stays."""
    pin = OPENCV_PIN
    assert _cv2_owners() == {("opencv-python-headless", pin.split("==")[1])}
    import cv2

    assert cv2.__version__.startswith(pin.split("==")[1].rsplit(".", 1)[0])


def test_every_install_path_keeps_one_opencv():
    """`make setup` and each conda env's post-deploy script remove both wheels and put the pin back."""
    pin = OPENCV_PIN
    makefile = (REPO / "Makefile").read_text()
    assert "pip uninstall --quiet -y opencv-python opencv-python-headless" in makefile
    assert makefile.index("pip install --quiet -e '.[test]'") < makefile.index("pip uninstall --quiet -y opencv-python")
    for env in sorted((REPO / "envs").glob("*.yaml")):
        script = env.with_name(env.stem + ".post-deploy.sh")
        assert script.is_file(), f"{script.name} missing"
        text = script.read_text()
        assert "uninstall --quiet -y opencv-python opencv-python-headless" in text and f'"{pin}"' in text
