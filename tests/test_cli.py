"""The CLI's wiring: each command reaches its handler with the options the handler reads."""

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
