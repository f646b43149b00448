"""The library mirrors the DAG: rule -> script -> module of the same name; the demo stays a plug-in."""

import ast
import re

from conftest import REPO

LIB = REPO / "workflow" / "rs5m"
SCRIPTS = REPO / "workflow" / "scripts"
LONG_MODULE_LINES = 400


def rule_scripts():
    """(rule, script file name) for every rule with a `script:` directive."""
    pairs = []
    for smk in sorted((REPO / "rules").glob("*.smk")):
        rule = None
        for line in smk.read_text().splitlines():
            found = re.match(r"\s*rule (\w+):", line)
            if found:
                rule = found.group(1)
            script = re.search(r'"\.\./workflow/scripts/(\w+)\.py"', line)
            if script:
                pairs.append((rule, script.group(1)))
    return pairs


def library_modules():
    return sorted(p for p in LIB.rglob("*.py") if "__pycache__" not in p.parts)


def imported_modules(path):
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
            names.extend(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return names


def test_every_rule_script_is_named_for_its_rule():
    pairs = rule_scripts()
    assert len(pairs) > 25
    # A script may serve the variants of its rule (`shards_part` and `shards` share `shards.py`).
    mismatched = [(rule, script) for rule, script in pairs if rule != script and not rule.startswith(script + "_")]
    assert not mismatched, f"rules whose script has another name: {mismatched}"


def test_every_script_calls_the_module_of_its_name():
    for script in sorted(SCRIPTS.glob("*.py")):
        modules = [m for m in imported_modules(script) if m.startswith("rs5m.") and m != "rs5m.adapter"]
        libs = {m for m in modules if (LIB / (m.removeprefix("rs5m.").replace(".", "/") + ".py")).is_file()}
        assert libs, f"{script.name} calls no library module"
        assert all(m.rsplit(".", 1)[-1] == script.stem for m in libs), f"{script.name} imports {sorted(libs)}"


def test_production_code_never_imports_the_demo():
    offenders = []
    for path in library_modules():
        if "demo" in path.relative_to(LIB).parts[:1]:
            continue
        if any(m == "rs5m.demo" or m.startswith("rs5m.demo.") for m in imported_modules(path)):
            offenders.append(str(path.relative_to(LIB)))
        if re.search(r"""["']rs5m\.demo""", path.read_text()):
            offenders.append(f"{path.relative_to(LIB)} (names the demo in a string)")
    assert not offenders, f"production modules that import the demo: {offenders}"


def test_every_module_says_what_it_is_and_long_ones_say_why():
    for path in library_modules():
        source = path.read_text()
        docstring = ast.get_docstring(ast.parse(source))
        assert docstring, f"{path.relative_to(LIB)} has no docstring"
        lines = len(source.splitlines())
        if lines > LONG_MODULE_LINES:
            assert "Size:" in docstring, (
                f"{path.relative_to(LIB)} has {lines} lines and no `Size:` reason in its docstring"
            )
