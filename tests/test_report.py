"""report chooses on valid and reports on test: the model with the better test score but the worse
validation score is not the one named, and the baselines are ranked the same way."""

import json

import pandas as pd

from specimen.report.report import comparison, headline, headline_rst


def write_model(root, name, test_f1, valid_f1):
    (root / "evaluation" / name).mkdir(parents=True)
    (root / "models" / name).mkdir(parents=True)
    metrics = {
        "accuracy": test_f1,
        "macro_f1": test_f1,
        "weighted_f1": test_f1,
        "valid": {"accuracy": valid_f1, "macro_f1": valid_f1, "weighted_f1": valid_f1, "images": 10},
        "test_images": 10,
    }
    (root / "evaluation" / name / "metrics.json").write_text(json.dumps(metrics))
    meta = {"parameters": 1, "epochs_run": 1, "train_seconds": 1.0, "images_per_second": 1.0}
    (root / "models" / name / "meta.json").write_text(json.dumps(meta))


def test_best_model_is_chosen_on_valid_not_on_test(tmp_path):
    write_model(tmp_path, "lucky_on_test", test_f1=0.95, valid_f1=0.80)
    write_model(tmp_path, "best_on_valid", test_f1=0.90, valid_f1=0.88)
    baselines = pd.DataFrame(
        [
            {"model": "mlp", "input": "pixels", "accuracy": 0.7, "macro_f1": 0.7, "valid_macro_f1": 0.6},
            {"model": "random_forest", "input": "pixels", "accuracy": 0.6, "macro_f1": 0.6, "valid_macro_f1": 0.65},
        ]
    )
    baselines.to_csv(tmp_path / "baselines.csv", index=False)
    table = comparison(
        ["lucky_on_test", "best_on_valid"], tmp_path / "evaluation", tmp_path / "models", tmp_path / "baselines.csv"
    )
    assert table.name.tolist() == ["best_on_valid", "lucky_on_test", "random_forest (pixels)", "mlp (pixels)"]
    assert table.set_index("name").loc["lucky_on_test", ["macro_f1", "valid_macro_f1"]].tolist() == [0.95, 0.80]
    by_accuracy = comparison(
        ["lucky_on_test", "best_on_valid"], tmp_path / "evaluation", tmp_path / "models", None, select="accuracy"
    )
    assert by_accuracy.name.tolist() == ["best_on_valid", "lucky_on_test"]
    clean = {"kept": 90, "removed": 10, "removed_by_reason": {"leak": 4, "duplicate": 6}, "flagged_by_kind": {}}
    h = headline(table[table.kind == "keras"], table[table.kind == "baseline"], "macro_f1", clean, tmp_path / "none")
    assert (h["chosen"], h["valid"], h["test_macro_f1"]) == ("best_on_valid", 0.88, 0.90)
    assert h["best_baseline"] == {
        "name": "random_forest (pixels)",
        "valid": 0.65,
        "test_accuracy": 0.6,
        "test_macro_f1": 0.6,
    }
    text = headline_rst(h)
    assert text.startswith("Headline\n========\n\n**best_on_valid** was chosen on its valid macro_f1 (0.880).")
    assert "Cleaning kept **90** images and removed **10** (duplicate 6, leak 4). Flagged and kept: none." in text
