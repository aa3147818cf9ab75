"""The shape of the code base: dependencies run one way (flows → tasks → models), no import cycles, the SQL
ships inside the package, and an installed (non-editable) wheel works from another directory."""

import ast
import graphlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("flows", "tasks", "models")  # each may import only the packages after it
# The stages of ``tasks``: each may import the stages it names (and itself), never one after it.
STAGES = {
    "store": set(),
    "extract": {"store"},
    "synthetic": {"store", "extract"},
    "predict": {"store", "extract"},
    "analyse": {"store", "extract", "predict", "synthetic"},
}


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in (*LAYERS, "sql"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def stage_of(module: str) -> str | None:
    """The stage of a module under ``tasks`` (``tasks.extract.decode`` → ``extract``), None for ``tasks`` itself."""
    parts = module.split(".")
    return parts[1] if parts[0] == "tasks" and len(parts) > 1 else None


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """Project modules imported anywhere in the file (top level and inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found |= {n for n in names if n in modules}
    return found


def test_dependencies_run_one_way_and_nothing_imports_in_a_cycle():
    modules = project_modules()
    graph = {name: imports_of(path, modules) - {name} for name, path in modules.items()}
    violations = []
    for name, imported in graph.items():
        layer = name.split(".")[0]
        if layer not in LAYERS:
            continue
        allowed = set(LAYERS[LAYERS.index(layer) :])
        violations += [f"{name} imports {dep}" for dep in imported if dep.split(".")[0] not in allowed]
    assert not violations, "dependencies must run flows → tasks → models:\n" + "\n".join(violations)
    edges = {name: {d for d in deps if d.split(".")[0] != d or d == name} for name, deps in graph.items()}
    file_graph = {n: {d for d in deps if "." in d} for n, deps in edges.items() if "." in n}
    try:
        graphlib.TopologicalSorter(file_graph).prepare()
    except graphlib.CycleError as err:
        pytest.fail(f"import cycle between files: {' → '.join(err.args[1])}")


def test_tasks_stages_import_one_way():
    """store ← extract ← predict ← analyse (synthetic beside extract, used by analyse): a stage imports only the
    stages before it, so each folder can be read knowing only those below it."""
    modules = project_modules()
    stages = {stage_of(name) for name in modules} - {None}
    assert stages == set(STAGES), f"tasks/ has stage folders {sorted(stages)}; STAGES names {sorted(STAGES)}"
    violations = []
    for name, path in modules.items():
        stage = stage_of(name)
        if stage is None:
            continue
        for dep in imports_of(path, modules):
            dep_stage = stage_of(dep)
            if dep_stage is not None and dep_stage != stage and dep_stage not in STAGES[stage]:
                violations.append(f"{name} imports {dep} ({stage} may import {sorted(STAGES[stage]) or 'no stage'})")
    assert not violations, "tasks/ stages must import one way:\n" + "\n".join(violations)
    loose = {p.name for p in (ROOT / "tasks").glob("*.py")} - {"__init__.py"}
    assert not loose, f"every module of tasks/ lives in a stage folder: {sorted(loose)}"


def test_no_module_under_tasks_is_longer_than_600_lines():
    long = {name: n for name, path in project_modules().items() if name.startswith("tasks")
            if (n := len(path.read_text().splitlines())) > 600}  # fmt: skip
    assert not long, f"split these modules by concern: {long}"


def test_every_package_says_what_lives_there_and_what_it_may_import():
    packages = [*LAYERS, "sql", *(f"tasks/{stage}" for stage in STAGES)]
    for package in packages:
        doc = ast.get_docstring(ast.parse((ROOT / package / "__init__.py").read_text()))
        assert doc and len(doc) > 80, f"{package}/__init__.py needs a docstring"
        if package != "sql":
            assert "may import" in doc.lower(), f"{package}/__init__.py must say what it may import"


@pytest.mark.slow
def test_an_installed_wheel_runs_query_and_models_info_from_another_directory(tmp_path):
    """A normal (non-editable) install ships the SQL files: `lessonlens query` reads the marts through the
    package, from a directory that is not the source tree."""
    source = tmp_path / "source"  # a copy of the tracked files: building leaves nothing in the checkout
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, check=True, text=True, capture_output=True).stdout
    for name in tracked.split():
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / name, source / name)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(source),
        ],
        check=True,
    )
    (wheel,) = wheels.glob("lessonlens-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], check=True, text=True,
        capture_output=True,
    ).stdout.strip()  # fmt: skip
    # dependencies from this environment, as a plain path entry (so its editable finder is not loaded)
    deps = next(p for p in sys.path if p.endswith("site-packages") and Path(p, "duckdb").is_dir())
    Path(site, "dependencies.pth").write_text(deps + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", site, str(wheel)], check=True
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = (
        "import sys, tasks, sql; from flows.cli import main; "
        f"assert tasks.__file__.startswith({site!r}) and sql.__file__.startswith({site!r}), tasks.__file__; "
        "sys.exit(main(sys.argv[1:]))"
    )
    store = elsewhere / "store"
    store.mkdir()
    query = subprocess.run(
        [python, "-c", code, "query", "--store", str(store), "select count(*) as n from session_analysis"],
        cwd=elsewhere, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert query.returncode == 0 and "0" in query.stdout, query.stdout + query.stderr
    info = subprocess.run(
        [python, "-c", code, "models", "info", "--no-latency"], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert info.returncode == 0 and "learner_state" in info.stdout, info.stdout + info.stderr
