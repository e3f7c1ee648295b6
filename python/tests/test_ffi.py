"""Rookery's functions in a datafusion-python session, through
datafusion-ffi capsules."""

import numpy as np
import pyarrow as pa
import pytest

import rookery
from conftest import DATA, FIXTURES

datafusion = pytest.importorskip("datafusion")


@pytest.fixture
def df_ctx():
    ctx = datafusion.SessionContext()
    rookery.register(ctx)
    return ctx


def test_scalar_functions_cross(df_ctx):
    df_ctx.register_record_batches("made", [[pa.record_batch({"image": rookery.images_to_arrow([np.zeros((4, 6, 3), np.uint8)])})]])
    table = df_ctx.sql("SELECT image_width(image) AS w, image_height(image_flip_h(image)) AS h FROM made").to_arrow_table()
    assert table.to_pydict() == {"w": [6], "h": [4]}


def test_images_table_function_crosses(df_ctx):
    expected = rookery.connect().sql(
        f"SELECT name, width, height FROM images('{DATA / 'Test'}') ORDER BY name"
    ).to_arrow()
    table = df_ctx.sql(f"SELECT name, width, height FROM images('{DATA / 'Test'}') ORDER BY name").to_arrow_table()
    assert table.to_pydict() == expected.to_pydict()


def test_model_functions_and_aggregates_cross(df_ctx, tmp_path):
    model = FIXTURES / "colour_classifier.onnx"
    labels = df_ctx.sql(
        f"SELECT cnn_classify('{model}', image) AS label FROM images('{DATA / 'Test'}') LIMIT 2"
    ).to_arrow_table().column("label").to_pylist()
    assert len(labels) == 2 and all(labels)
    # An aggregate crosses too: cnn_train's own check answers.
    with pytest.raises(Exception, match="at least two distinct labels"):
        df_ctx.sql(
            f"SELECT cnn_train(image, 'one', 'epochs=1, output={tmp_path}/m.onnx') FROM images('{DATA / 'Test'}')"
        ).collect()


def test_what_does_not_cross_is_an_error_not_a_crash(df_ctx, tmp_path):
    with pytest.raises(Exception, match="(?i)images|format|stored"):
        df_ctx.sql(f"CREATE EXTERNAL TABLE t STORED AS IMAGES LOCATION '{DATA / 'Test'}'").collect()
