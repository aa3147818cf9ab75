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


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in (*LAYERS, "sql"):
        for path in sorted((ROOT / package).glob("*.py")):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            modules[name] = path
    return modules


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


def test_every_package_says_what_lives_there_and_what_it_may_import():
    for package in (*LAYERS, "sql"):
        doc = ast.get_docstring(ast.parse((ROOT / package / "__init__.py").read_text()))
        assert doc and len(doc) > 80, f"{package}/__init__.py needs a docstring"
        if package in LAYERS:
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
