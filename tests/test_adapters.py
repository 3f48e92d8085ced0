"""The few private names specimen uses of its libraries, each behind one small adapter: each adapter
finds what it needs in the pinned versions, and says in one line what an upgrade took away."""

import pytest

from specimen import SpecimenError


def test_dvc_internals_are_there_and_a_missing_one_is_named(monkeypatch):
    import dvc.rwlock

    from specimen import dvcadapter

    dvcadapter.check()
    monkeypatch.delattr(dvc.rwlock, "rwlock")
    with pytest.raises(SpecimenError, match=r"dvc 3\.\S+ has no dvc\.rwlock\.rwlock, which specimen\.dvcadapter uses"):
        dvcadapter.check()


def test_kerastuner_internals_are_there_and_a_missing_one_is_named(monkeypatch):
    import keras_tuner.src.utils

    from specimen.train import kerastuner

    kerastuner.check()
    monkeypatch.delattr(keras_tuner.src.utils, "save_json")
    with pytest.raises(SpecimenError, match=r"keras-tuner \S+ has no keras_tuner\.src\.utils\.save_json"):
        kerastuner.check()


def test_the_keras_backup_internals_are_there_and_a_missing_one_is_named(monkeypatch):
    import keras

    from specimen.train.resume import check_keras_backup

    check_keras_backup()
    monkeypatch.delattr(keras.callbacks.BackupAndRestore, "_save_model")
    with pytest.raises(
        SpecimenError,
        match=r"keras \S+ has no BackupAndRestore\._save_model, which "
        r"specimen\.train\.resume\.Backup overrides",
    ):
        check_keras_backup()


def test_cleanvisions_properties_are_found_and_a_move_is_named(monkeypatch):
    from specimen.clean import quality

    assert [c.__name__ for c in quality.cleanvision_properties()] == [
        "BrightnessProperty",
        "EntropyProperty",
        "BlurrinessProperty",
        "ColorSpaceProperty",
        "SizeProperty",
    ]
    monkeypatch.setattr(quality, "CLEANVISION_PROPERTIES", "cleanvision.moved_elsewhere")
    with pytest.raises(
        SpecimenError, match=r"cleanvision 0\.3\.\d+: .*specimen\.clean\.quality reads its image properties"
    ):
        quality.cleanvision_properties()


def test_explain_reads_a_nested_models_call_in_the_outer_graph():
    """A backbone nested in a model whose input is concatenated to three channels (a grey model):
    the tensors of the backbone's call in the outer graph, from the one private Keras name explain uses."""
    import keras

    from specimen.report.explain import _outer

    inner_in = keras.Input((8, 8, 3))
    inner = keras.Model(inner_in, keras.layers.Conv2D(4, 3, name="conv")(inner_in), name="backbone")
    x = keras.Input((8, 8, 1))
    rgb = keras.layers.Concatenate()([x, x, x])
    outer = keras.Model(x, keras.layers.GlobalAveragePooling2D()(inner(rgb)))
    assert hasattr(inner, "_inbound_nodes"), "Keras' Layer._inbound_nodes is gone: adapt specimen.report.explain._outer"
    assert _outer(inner, "input_tensors") is rgb
    assert tuple(_outer(inner).shape) == (None, 6, 6, 4) and _outer(inner) is not inner.output
    assert keras.Model(outer.input, _outer(inner))(keras.ops.ones((1, 8, 8, 1))).shape == (1, 6, 6, 4)
