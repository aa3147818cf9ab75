"""The CLI's wiring: each command reaches its handler with the options the handler reads."""

import json
import subprocess
import sys

import pytest

from flows.cli import main


def test_train_and_evaluate_name_a_missing_dataset(tmp_path, capsys):
    missing = tmp_path / "labels.csv"
    assert main(["train", "--dataset", "manifest", str(missing), "--model", "learner_state", "--epochs", "1"]) == 2
    assert "labels.csv" in capsys.readouterr().err
    args = ["evaluate", "--dataset", "manifest", str(missing), "--store", str(tmp_path), "--model", "learner_state",
            "--version", "v0001"]  # fmt: skip
    assert main(args) == 2
    assert "labels.csv" in capsys.readouterr().err


def test_models_list_and_promote_on_an_empty_store(tmp_path, capsys):
    assert main(["models", "list", "--store", str(tmp_path)]) == 0
    assert "no registered models" in capsys.readouterr().out
    assert main(["models", "promote", "--store", str(tmp_path), "--model", "learner_state", "--version", "v1"]) == 2
    assert "v1" in capsys.readouterr().err


def test_unknown_model_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--dataset", "dfew", "x", "--model", "resnet"])
    assert "invalid choice" in capsys.readouterr().err


def test_building_the_parser_imports_neither_torch_nor_prefect():
    code = "import json, sys; from flows.cli import build_parser; build_parser(); print(json.dumps(list(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    modules = set(json.loads(done.stdout))
    assert "torch" not in modules and "prefect" not in modules


def test_train_options_left_out_take_the_training_runs_defaults(monkeypatch, tmp_path):
    from types import SimpleNamespace

    import tasks.predict.training
    from tasks.predict.training import TrainingRun

    runs = []
    result = SimpleNamespace(metrics={}, out_dir=tmp_path)
    monkeypatch.setattr(tasks.predict.training, "run_training", lambda run: runs.append(run) or (result, None))
    labels = str(tmp_path / "labels.csv")
    assert main(["train", "--dataset", "manifest", labels, "--model", "learner_state"]) == 0
    assert main(["train", "--dataset", "manifest", labels, "--model", "learner_state", "--epochs", "3"]) == 0
    default = TrainingRun("manifest", labels, "learner_state")
    fields = [(r.variant, r.epochs, r.fps, r.batch_size) for r in runs]
    assert fields == [(default.variant, default.epochs, default.fps, default.batch_size),
                      (default.variant, 3, default.fps, default.batch_size)]  # fmt: skip


def test_output_cut_short_by_its_reader_is_not_an_error(tmp_path):
    from tasks.store import Store

    Store(tmp_path / "store").ensure()
    command = f"{sys.executable} -m flows.cli query --store {tmp_path / 'store'} 'select range as n from range(300000)'"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", f"{command} | head -2"], capture_output=True, text=True)
    assert done.stdout.split() == ["n", "0"]
    assert (done.returncode, done.stderr) == (0, "")
