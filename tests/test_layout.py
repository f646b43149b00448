"""The library mirrors the DAG: rule -> script -> module of the same name; the demo stays a plug-in."""

import ast
import re

import yaml
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


def is_settings_module(module):
    """`rs5m.<package>.settings` (a stage package's config builders) or the core's `rs5m.settings`
    (the builder and the settings two stages share), which adapters may call."""
    parts = module.split(".")
    return parts[:2] == ["rs5m", "settings"] or (len(parts) >= 3 and parts[0] == "rs5m" and parts[2] == "settings")


def test_every_script_calls_the_module_of_its_name():
    for script in sorted(SCRIPTS.glob("*.py")):
        modules = [
            m
            for m in imported_modules(script)
            if m.startswith("rs5m.") and m != "rs5m.adapter" and not is_settings_module(m)
        ]
        libs = {m for m in modules if (LIB / (m.removeprefix("rs5m.").replace(".", "/") + ".py")).is_file()}
        assert libs, f"{script.name} calls no library module"
        assert all(m.rsplit(".", 1)[-1] == script.stem for m in libs), f"{script.name} imports {sorted(libs)}"


def test_every_duckdb_memory_limit_of_a_rule_comes_from_the_helper():
    """A rule's DuckDB `memory_limit` param is rs5m.duck.memory_limit_for(resources.mem_mb) (or a
    configured limit), never the fraction written out again."""
    params = []
    for smk in sorted((REPO / "rules").glob("*.smk")):
        text = smk.read_text()
        assert not re.search(r"mem_mb\s*\*\s*\d+\s*//", text), f"{smk.name} restates DuckDB's memory fraction"
        params += [(smk.name, m) for m in re.findall(r"memory_limit=lambda[^\n]*(?:\n\s+or [^\n]*)?", text)]
    assert len(params) >= 4
    assert all("memory_limit_for(resources.mem_mb)" in body for _, body in params), params


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


# Defaults an entry function may keep: none of them is a config value. (module, function, parameter): why.
ENTRY_DEFAULTS = {
    ("rs5m.assemble.dataset_stats", "write_report", "base_dir"): "the run folder; image paths are relative to it",
    ("rs5m.pub11.score_part", "score_part", "root"): "the run folder; kept.parquet's tar paths are relative to it",
    ("rs5m.pub11.train_rs_detector", "train_rs_detector", "ratios"): "the paper's 7:1:2 detector split",
    ("rs5m.pub11.pub11_places", "places_table", "text_column"): "a column name of the caption table",
    ("rs5m.pub11.pub11_places", "places_table", "name_column"): "a column name of the caption table",
    ("rs5m.rs3.rs3_read_fmow", "read_fmow", "dataset"): "the dataset name rows and uids carry",
    ("rs5m.rs3.rs3_read_bigearthnet", "read_bigearthnet", "dataset"): "the dataset name rows and uids carry",
    ("rs5m.rs3.rs3_read_millionaid", "read_millionaid", "dataset"): "the dataset name rows and uids carry",
    ("rs5m.demo.decontamination_demo_eval", "write_demo_eval_sets", "pub11_images"): "demo eval-set size",
    ("rs5m.demo.decontamination_demo_eval", "write_demo_eval_sets", "rs3_images"): "demo eval-set size",
    ("rs5m.demo.decontamination_demo_eval", "write_demo_eval_sets", "copies"): "demo eval-set size",
    ("rs5m.demo.decontamination_demo_eval", "write_demo_eval_sets", "distinct"): "demo eval-set size",
}


def schema_defaults_by_key():
    """{key name: [default values]} of every key of config/schema.yaml, nested ones included."""
    found = {}

    def walk(node, name=None):
        if not isinstance(node, dict):
            return
        if name is not None and "default" in node:
            found.setdefault(name, []).append(node["default"])
        for key, child in {**node.get("properties", {}), **node.get("$defs", {})}.items():
            walk(child, key)
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"])

    walk(yaml.safe_load((REPO / "config" / "schema.yaml").read_text()))
    return found


def entry_functions():
    """(module, function definition) of every rs5m function an adapter in workflow/scripts calls."""
    entries = []
    for script in sorted(SCRIPTS.glob("*.py")):
        for node in ast.walk(ast.parse(script.read_text())):
            if not (isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rs5m.")):
                continue
            if node.module == "rs5m.adapter" or is_settings_module(node.module):
                continue
            tree = ast.parse((LIB / (node.module.removeprefix("rs5m.").replace(".", "/") + ".py")).read_text())
            defs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
            entries.extend((node.module, defs[alias.name]) for alias in node.names if alias.name in defs)
    return entries


def parameter_defaults(function):
    """(parameter name, default value node) of every parameter with a default."""
    args = function.args
    positional = args.posonlyargs + args.args
    pairs = list(zip(positional[len(positional) - len(args.defaults) :], args.defaults))
    pairs += [(arg, default) for arg, default in zip(args.kwonlyargs, args.kw_defaults) if default is not None]
    return [(arg.arg, default) for arg, default in pairs]


def test_entry_functions_take_config_values_as_required_arguments():
    """Config defaults live only in config/schema.yaml: a function an adapter calls has no default of
    its own, except the few non-config ones of ENTRY_DEFAULTS (each with its reason)."""
    entries = entry_functions()
    assert len(entries) > 25
    schema = schema_defaults_by_key()
    offenders, seen = [], set()
    for module, function in entries:
        for name, default in parameter_defaults(function):
            key = (module, function.name, name)
            seen.add(key)
            try:
                value = ast.literal_eval(default)
            except ValueError:
                value = ast.unparse(default)
            restated = [
                d for d in schema.get(name, []) if d == value or (isinstance(value, tuple) and list(value) == d)
            ]
            if key not in ENTRY_DEFAULTS or restated:
                offenders.append(f"{module}.{function.name}({name}={ast.unparse(default)})")
    assert not offenders, f"entry functions with defaults (config values belong in config/schema.yaml): {offenders}"
    assert set(ENTRY_DEFAULTS) <= seen, f"stale ENTRY_DEFAULTS entries: {sorted(set(ENTRY_DEFAULTS) - seen)}"


def test_adapters_restate_no_config_default():
    """Adapters read the validated config (every default filled in): no `params.x.get(key, default)`."""
    offenders = []
    for script in sorted(SCRIPTS.glob("*.py")):
        for node in ast.walk(ast.parse(script.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
                target = ast.unparse(node.func.value)
                if len(node.args) > 1 and target.startswith(("snakemake.params", "snakemake.config")):
                    offenders.append(f"{script.name}: {ast.unparse(node)}")
    assert not offenders, f"adapters that restate a config default: {offenders}"


# Library defaults under the name of a config key and equal to that key's schema default, each with
# the reason it is not that config value restated. Everything else takes the value as an argument.
SAME_NAME_DEFAULTS = {
    (
        "assemble/audit.py",
        "audit",
        "verify_images",
    ): "the `rs5m audit` command's API on a run folder; the rule passes audit.verify_images",
    (
        "assemble/audit.py",
        "audit",
        "ledger",
    ): "None finds the ledger files under results/ (`rs5m audit`); the rule passes the list",
    ("assemble/audit.py", "_ledger_files", "ledger"): "as audit(ledger=None)",
    ("assemble/audit.py", "check_ledger", "ledger"): "as audit(ledger=None)",
    ("assemble/audit.py", "_check_drops", "ledger"): "as audit(ledger=None)",
    (
        "assemble/card_loading.py",
        "open_clip_arguments",
        "batch_size",
    ): "the card's loading example, not outliers.batch_size",
    (
        "assemble/card_loading.py",
        "open_clip_arguments",
        "workers",
    ): "the card's loading example, not evaluation.workers",
    (
        "demo/decontamination_demo_eval.py",
        "planted_copies",
        "count",
    ): "demo: planted copies (None = all), not shards.count",
    (
        "decontamination/decontamination_report.py",
        "_load_thumb",
        "size",
    ): "the pairs figure's thumbnails, not decontamination.confirm.size",
    ("demo/rs3_tiny_models.py", "build_tiny_clip", "seed"): "demo: the tiny models' fixed weights, not demo.seed",
    ("demo/rs3_tiny_models.py", "build_tiny_blip2", "seed"): "demo: the tiny models' fixed weights, not demo.seed",
    (
        "duck.py",
        "connect",
        "memory_limit",
    ): "DuckDB's own bound for callers outside the rules (browse, tests, benchmarks)",
    ("loader.py", "make_loader", "seed"): "the loading API for researchers (shuffle seed), not a build setting",
    (
        "loader.py",
        "make_loader",
        "shuffle",
    ): "the loading API for researchers (the authors' buffer), not evaluation.train.shuffle",
    (
        "loader.py",
        "load_hf",
        "member_names",
    ): "the loading API for researchers: default-named shards load without arguments",
    ("pub11/crawl_guard.py", "fetch", "user_agent_token"): "img2dataset's download call, which it replaces, passes it",
    ("pub11/crawl_guard.py", "fetch_once", "user_agent_token"): "robots.txt fetches send no token",
    (
        "pub11/images_part.py",
        "inspect_images",
        "batch_size",
    ): "images per worker task; the image check has no batch setting",
    (
        "pub11/train_rs_detector.py",
        "predict_rs_probability",
        "batch_size",
    ): "detector inference, not outliers.batch_size",
    (
        "pub11/train_rs_detector.py",
        "export_training_images",
        "seed",
    ): "a hand tool for detector training folders; no rule calls it",
    ("rs3/rs3_caption.py", "__init__", "batch_size"): "ClipScorer's ranking batch, not caption.batch_size (BLIP-2)",
}


def test_library_functions_restate_no_config_default():
    """Below the entry functions too: a default named like a config key and equal to its schema
    default is that config value restated, unless SAME_NAME_DEFAULTS gives another reason."""
    schema = schema_defaults_by_key()
    offenders, seen = [], set()
    for path in library_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for name, default in parameter_defaults(node):
                try:
                    value = ast.literal_eval(default)
                except ValueError:
                    continue
                if not any(d == value or (isinstance(value, tuple) and list(value) == d) for d in schema.get(name, [])):
                    continue
                key = (path.relative_to(LIB).as_posix(), node.name, name)
                seen.add(key)
                if key not in SAME_NAME_DEFAULTS:
                    offenders.append(f"{key[0]}:{node.lineno} {node.name}({name}={ast.unparse(default)})")
    assert not offenders, f"library defaults that restate config/schema.yaml: {offenders}"
    assert set(SAME_NAME_DEFAULTS) <= seen, (
        f"stale SAME_NAME_DEFAULTS entries: {sorted(set(SAME_NAME_DEFAULTS) - seen)}"
    )


# Dataclass field defaults and module constants under a config key's name and equal to its schema
# default, each with the reason it is not that config value restated.
SAME_NAME_FIELDS_AND_CONSTANTS = {
    ("assemble/manifest.py", "Manifest", "count"): "a manifest read back without a count (size-based tars)",
    ("pub11/sources.py", "SourceFormat", "width"): "a source format without a width column",
    ("pub11/sources.py", "SourceFormat", "height"): "a source format without a height column",
    ("pub11/sources.py", "SourceFormat", "index_file"): "a source format without a DFN index",
}


def _restates(value, defaults):
    def same(default):
        if isinstance(value, (tuple, list)) and isinstance(default, list):
            return list(value) == default
        return value == default and isinstance(value, bool) == isinstance(default, bool)

    return any(same(default) for default in defaults)


def _literal(node):
    """The value of a literal, a tuple/list/frozenset(...) of literals, or a dataclass field(default=...,
    default_factory=lambda: <literal>); else raises ValueError."""
    if isinstance(node, ast.Call):
        name = ast.unparse(node.func)
        if name in ("tuple", "list", "frozenset", "set") and len(node.args) == 1:
            return tuple(_literal(node.args[0]))
        if name.endswith("field"):
            for keyword in node.keywords:
                if keyword.arg == "default":
                    return _literal(keyword.value)
                if keyword.arg == "default_factory":
                    factory = keyword.value
                    if isinstance(factory, ast.Lambda):
                        return _literal(factory.body)
                    if ast.unparse(factory) in ("list", "dict", "tuple"):
                        return {"list": [], "dict": {}, "tuple": ()}[ast.unparse(factory)]
        raise ValueError(ast.unparse(node))
    if isinstance(node, ast.Name) and node.id.isupper():
        raise ValueError(node.id)  # a named constant: judged where it is defined
    return ast.literal_eval(node)


def restated_fields_and_constants(root=LIB):
    """(module, class or None, name) of every dataclass field default and module-level UPPER_CASE
    constant that restates a schema default: a field named like a config key with that key's
    default; a constant whose name contains a key's name and equals its default, or any constant
    sequence of two or more items equal to a list default of the schema (the prompt lists, say)."""
    schema = schema_defaults_by_key()
    found = set()
    for path in sorted(root.rglob("*.py")):
        module = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            if not any("dataclass" in ast.unparse(decorator) for decorator in node.decorator_list):
                continue
            for statement in node.body:
                if not (isinstance(statement, ast.AnnAssign) and statement.value is not None):
                    continue
                name = statement.target.id
                try:
                    value = _literal(statement.value)
                except ValueError:
                    continue
                if name in schema and _restates(value, schema[name]):
                    found.add((module, node.name, name))
        for statement in tree.body:
            if isinstance(statement, ast.Assign):
                names = [t.id for t in statement.targets if isinstance(t, ast.Name)]
            elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
                names = [statement.target.id]
            else:
                continue
            for name in (n for n in names if n.lstrip("_").isupper()):
                try:
                    value = _literal(statement.value)
                except ValueError:
                    continue
                sequence = isinstance(value, (tuple, list)) and len(value) >= 2
                for key, defaults in schema.items():
                    if (key in name.lower() or sequence) and _restates(value, defaults):
                        found.add((module, None, name))
    return found


def test_dataclass_fields_and_constants_restate_no_config_default():
    """Dataclass field defaults and module constants are config defaults too: none restates one
    (the settings classes of rs5m/<package>/settings.py have no defaults at all)."""
    found = restated_fields_and_constants()
    allowed = set(SAME_NAME_FIELDS_AND_CONSTANTS)
    offenders = sorted(found - allowed, key=str)
    assert not offenders, f"dataclass fields or constants that restate config/schema.yaml: {offenders}"
    stale = sorted(set(SAME_NAME_FIELDS_AND_CONSTANTS) - found, key=str)
    assert not stale, f"stale SAME_NAME_FIELDS_AND_CONSTANTS entries: {stale}"


def test_the_restated_default_check_sees_fields_and_constants(tmp_path):
    """The check above finds a restated field default, a restated constant and a restated list."""
    (tmp_path / "_layout_probe.py").write_text(
        '"""probe."""\n\nfrom dataclasses import dataclass, field\n\n'
        "DEFAULT_MAX_REDIRECTS = 5\nPROMPT_NOUNS = ('remote sensing image', 'aerial image', 'satellite image')\n\n\n"
        "@dataclass\nclass Probe:\n    min_side: int = 32\n    modifiers: list = field(default_factory=list)\n"
    )
    assert restated_fields_and_constants(tmp_path) == {
        ("_layout_probe.py", None, "DEFAULT_MAX_REDIRECTS"),
        ("_layout_probe.py", None, "PROMPT_NOUNS"),
        ("_layout_probe.py", "Probe", "min_side"),
    }


def test_every_settings_class_reads_schema_keys_only():
    """Each stage's settings builder takes its fields from the config by the schema's key names: built
    from the schema's defaults, every field is found (a renamed field would be a KeyError)."""
    import dataclasses
    import importlib

    from rs5m.configured import defaults

    built = []
    for path in [LIB / "settings.py", *sorted(LIB.glob("*/settings.py"))]:
        package = "" if path.parent == LIB else path.parent.name + "."
        module = importlib.import_module("rs5m." + package + "settings")
        for name, cls in vars(module).items():
            if dataclasses.is_dataclass(cls) and hasattr(cls, "from_config") and cls.__module__ == module.__name__:
                settings = cls.from_config(defaults())
                assert all(f.default is dataclasses.MISSING for f in dataclasses.fields(cls)), name
                built.append(type(settings).__name__)
    # one source's settings (sources.<name>), from a source the schema fills in
    from rs5m.configured import config
    from rs5m.pub11.settings import SourceSettings

    SourceSettings.from_source(config({"sources": {"laion2b": {"paths": ["x"]}}}), "laion2b")
    assert {
        "CaptionSettings",
        "OutlierSettings",
        "DecontaminationSettings",
        "ShardSettings",
        "MetacaptionSettings",
    } <= set(built)


def rule_blocks():
    """{rule: its text} of every rule in rules/*.smk."""
    blocks = {}
    for smk in sorted((REPO / "rules").glob("*.smk")):
        parts = re.split(r"^\s*rule (\w+):", smk.read_text(), flags=re.M)
        blocks.update(zip(parts[1::2], parts[2::2]))
    return blocks


def test_every_rule_whose_module_opens_duckdb_bounds_its_memory_with_the_helper():
    """A rule whose library module opens DuckDB (rs5m.duck) passes `memory_limit` from
    memory_limit_for(resources.mem_mb) and declares that mem_mb."""
    blocks = rule_blocks()
    duck_rules = []
    for rule, script in rule_scripts():
        adapter = SCRIPTS / f"{script}.py"
        modules = [m for m in imported_modules(adapter) if m.startswith("rs5m.") and m != "rs5m.adapter"]
        paths = [LIB / (m.removeprefix("rs5m.").replace(".", "/") + ".py") for m in modules]
        if any("rs5m.duck" in imported_modules(path) for path in paths if path.is_file()):
            duck_rules.append(rule)
            block = blocks[rule]
            assert "memory_limit_for(resources.mem_mb)" in block and "mem_mb=" in block, rule
    assert {"keyword_filter", "url_filter", "image_dedup", "pub11_metacaption"} <= set(duck_rules)


def test_demo_rules_live_in_demo_smk_and_load_the_demo_only_when_enabled():
    """Every rule that runs an rs5m.demo module is in rules/demo.smk, and the rules name rs5m.demo
    only inside its `if DEMO["enabled"]:` block: a full rebuild never imports the demo package."""
    demo_modules = {path.stem for path in (LIB / "demo").glob("*.py")}
    for smk in sorted((REPO / "rules").glob("*.smk")):
        text = smk.read_text()
        scripts = re.findall(r'"\.\./workflow/scripts/(\w+)\.py"', text)
        if smk.name == "demo.smk":
            assert scripts and set(scripts) <= demo_modules, scripts
            enabled = text.split('if DEMO["enabled"]:\n', 1)[1].split("\n\n\nif ", 1)[0]
            imports = [line for line in text.splitlines() if "rs5m.demo" in line and not line.startswith("#")]
            assert imports and all(line.startswith("    ") and line in enabled for line in imports), imports
        else:
            assert "rs5m.demo" not in text, f"{smk.name} names the demo package"
            assert not set(scripts) & demo_modules, f"{smk.name} runs demo rules {set(scripts) & demo_modules}"


# Imports of another stage's module that remain, with their reason. (importer package, module): why.
CROSS_STAGE_IMPORTS = {
    ("demo", "rs5m.pub11.sources"): "the demo writes the YFCC100M input format that stage reads",
}
STAGE_PACKAGES = ("pub11", "rs3", "decontamination", "assemble", "evaluation", "plan", "browse", "demo")


def test_no_stage_imports_another_stage_for_a_helper():
    """Helpers two stages share live in the core (data flows between stages through files)."""
    found = set()
    for path in library_modules():
        package = path.relative_to(LIB).parts[0]
        if package not in STAGE_PACKAGES:
            continue
        for module in imported_modules(path):
            parts = module.split(".")
            if len(parts) >= 3 and parts[0] == "rs5m" and parts[1] in STAGE_PACKAGES and parts[1] != package:
                found.add((package, ".".join(parts[:3])))
    unexpected = sorted(found - set(CROSS_STAGE_IMPORTS))
    assert not unexpected, f"stage modules importing another stage's module: {unexpected}"


def test_the_readers_of_assembly_names_do_not_import_the_shard_writer():
    readers = [
        LIB / "loader.py",
        *(LIB / "assemble" / f"{m}.py" for m in ("audit", "dataset_card", "card_loading", "metafiles")),
    ]
    for path in readers:
        assert "rs5m.assemble.shards" not in imported_modules(path), f"{path.name} imports the shard writer"


def test_gpu_rules_pass_only_the_config_keys_their_settings_read():
    """Snakemake reruns a job whose params changed. A GPU rule passes each config section it reads as
    `section_for(<the settings class its adapter builds>, config, "<section>")`: its params change
    when a key that class reads changes, not when another key of the section does (outliers.qa_levels,
    read by the QA sheet only, does not rescore every part)."""
    import importlib

    from rs5m.configured import config, defaults
    from rs5m.settings import section_for

    blocks = rule_blocks()
    checked = set()
    for rule, script in rule_scripts():
        block = blocks[rule]
        if not re.search(r"\bgpu=", block):
            continue
        adapter = (SCRIPTS / f"{script}.py").read_text()
        built = set(re.findall(r"(\w+Settings)\.from_config\(snakemake\.params\)", adapter))
        assert len(built) == 1, (rule, built)
        params = block.split("params:", 1)[1].split("script:", 1)[0]
        passed = re.findall(r"^\s*(\w+)=(.*?),?\s*(?:#.*)?$", params, flags=re.M)
        sections = [(name, value) for name, value in passed if name in defaults()]
        assert sections, rule
        for name, value in sections:
            assert value == f'section_for({next(iter(built))}, config, "{name}")', (rule, name, value)
        checked.add(rule)
    assert checked == {
        "score_part",
        "train_rs_detector",
        "rs3_caption",
        "decontamination_eval",
        "decontamination_rs3_features",
        "train_clip",
        "evaluate",
    }

    scoring = importlib.import_module("rs5m.pub11.settings").ScoringSettings  # score_part's
    as_configured = section_for(scoring, defaults(), "outliers")
    assert section_for(scoring, config({"outliers": {"qa_levels": [1.0, 2.0]}}), "outliers") == as_configured
    assert section_for(scoring, config({"outliers": {"batch_size": 7}}), "outliers") != as_configured
    assert scoring.from_config({"outliers": as_configured}) == scoring.from_config(defaults())
    # A nested read is projected too: train_clip reads the base model's entry of evaluation.models only.
    train = importlib.import_module("rs5m.evaluation.settings").TrainSettings
    models = {**defaults()["evaluation"]["models"], "other": {"model": "RN50"}}
    as_configured = section_for(train, defaults(), "evaluation")
    assert (
        section_for(train, config({"evaluation": {"models": models, "batch_size": 3}}), "evaluation") == as_configured
    )
    assert section_for(train, config({"evaluation": {"train": {"lr": 0.5}}}), "evaluation") != as_configured
