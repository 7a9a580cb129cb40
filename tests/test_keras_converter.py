"""The Keras/Larq converter end to end: real TensorFlow/Larq models, converted, run in onnxruntime with the
custom ops, compared with Keras itself."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from keras_models import (
    binary_layer_count,
    bireal_style,
    conv1d_options,
    dorefa_style,
    function_binarizer,
    lambda_model,
    layer_options,
    tf,
    vgg_style,
)

import bnn2onnx
from bnn2onnx.converter import convert, convert_with_report, load_source, random_inputs
from bnn2onnx.errors import ConversionError
from bnn2onnx.verification import verify

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "models"))
from train_digits_bnn import digits_split


def op_counts(model: onnx.ModelProto) -> Counter:
    return Counter(node.op_type for node in model.graph.node)


def packed_layers(model: onnx.ModelProto) -> list[str]:
    return [n.name for n in model.graph.node
            if any(a.name == "packed_output" and a.i == 1 for a in n.attribute)]


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = bnn2onnx.inference_session(model)
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def assert_matches_keras(model, converted: onnx.ModelProto, shape: tuple[int, ...], batch: int, seed: int) -> None:
    """The converted model's outputs equal Keras' on a random batch, to 1e-4 of the largest output."""
    x = np.random.default_rng(seed).standard_normal((batch, *shape)).astype(np.float32)
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(run(converted, x), expected, rtol=0, atol=1e-4 * np.abs(expected).max())


def test_demo_model_predicts_exactly_like_keras_on_the_digits_test_set() -> None:
    source = ROOT / "models" / "digits_bnn.h5"
    converted = convert(source)
    _, x_test, _, y_test = digits_split()
    keras_model = tf.keras.models.load_model(source, compile=False)
    expected = keras_model.predict(x_test, verbose=0)
    actual = run(converted, x_test)
    assert np.array_equal(actual.argmax(1), expected.argmax(1))
    assert np.mean(actual.argmax(1) == y_test) >= 0.9
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-3 * np.abs(expected).max())
    counts = op_counts(converted)
    assert (counts["BinaryConv2D"], counts["BinaryDense"], counts["BinaryMaxPool2D"]) == (5, 1, 1)
    assert counts["Sign"] == 0 and counts["Conv"] == 1 and counts["MatMul"] == 1  # float stem and classifier
    assert len(packed_layers(converted)) == 2  # the two VGG-style blocks


def test_vgg_style_model_gets_packed_threshold_outputs_and_is_exact() -> None:
    model = vgg_style()
    result = convert_with_report(model, samples=32)
    assert result.verification.outputs_agree, result.verification.summary()
    counts = op_counts(result.model)
    assert counts["BinaryConv2D"] + counts["BinaryDense"] == binary_layer_count(model) == 5
    assert counts["BinaryMaxPool2D"] == 1 and counts["MaxPool"] == 0
    # Every binary layer whose batch norm feeds only the next binarizer outputs packed bits; the last conv
    # (followed by Flatten's transpose) and the last dense (the model output) stay float.
    assert len(packed_layers(result.model)) == 3
    assert_matches_keras(model, result.model, (16, 16, 3), batch=64, seed=1)


def test_bireal_style_model_keeps_float_outputs_and_is_exact() -> None:
    model = bireal_style()
    result = convert_with_report(model, samples=32)
    assert result.verification.outputs_agree, result.verification.summary()
    assert op_counts(result.model)["BinaryConv2D"] == binary_layer_count(model) == 3
    assert packed_layers(result.model) == []
    # Residual inputs come with an explicit post affine map, never after skipped inputs (empty names), which
    # onnxruntime 1.23 and older crash on.
    assert all(all(name for name in n.input) for n in result.model.graph.node)
    assert_matches_keras(model, result.model, (16, 16, 3), batch=64, seed=2)


def test_grouped_dilated_and_depthwise_binary_convs_become_binary_ops_and_are_exact() -> None:
    model = layer_options()
    result = convert_with_report(model, samples=32)
    assert result.verification.outputs_agree, result.verification.summary()
    assert op_counts(result.model)["BinaryConv2D"] == binary_layer_count(model) == 3
    group_attributes = [a.i for n in result.model.graph.node if n.op_type == "BinaryConv2D" for a in n.attribute
                        if a.name == "group"]
    assert sorted(group_attributes) == [4, 40]  # the grouped conv, and the depthwise conv (one group a channel)
    assert_matches_keras(model, result.model, (12, 12, 8), batch=32, seed=3)


def test_conv1d_binary_layers_become_binary_ops_and_are_exact() -> None:
    model = conv1d_options()
    result = convert_with_report(model, samples=32)
    assert result.verification.outputs_agree, result.verification.summary()
    assert op_counts(result.model)["BinaryConv2D"] == binary_layer_count(model) == 2
    assert_matches_keras(model, result.model, (64, 8), batch=32, seed=5)


def test_k_bit_quantizers_stay_float_and_verify() -> None:
    """DoReFa: 2-bit activations are not binary, so no layer converts; the result agrees with Keras (or differs
    only on inputs proven to be ties of the source against its own float export)."""
    model = dorefa_style()
    result = convert_with_report(model, samples=32)
    assert result.binary_layers == [] and len(result.float_layers) == 4
    assert result.verification.passed, result.verification.summary()
    assert result.verification.export_differences in (None, result.verification.export_ties)


@pytest.mark.parametrize("quantizer, reason", [("ste_heaviside", "sign of a non-negative tensor (Relu)"),
                                               ("ste_tern", "sign of rounded values (Add)")])
def test_heaviside_and_ternary_activations_stay_float_with_the_reason(quantizer: str, reason: str) -> None:
    """larq's ste_heaviside (0 or 1) and ste_tern (-1, 0 or +1) are written with the sign op but are not
    binarizers: the layers they feed stay float, saying why, and the result agrees with Keras."""
    import larq as lq

    inputs = tf.keras.Input((12, 12, 8))
    x = tf.keras.layers.Conv2D(16, 3, padding="same")(inputs)
    x = lq.layers.QuantConv2D(32, 3, padding="same", input_quantizer=quantizer, kernel_quantizer="ste_sign",
                              use_bias=False)(x)
    x = tf.keras.layers.BatchNormalization(beta_initializer="random_normal")(x)
    x = lq.layers.QuantDense(10, input_quantizer=quantizer, kernel_quantizer="ste_sign")(tf.keras.layers.Flatten()(x))
    result = convert_with_report(tf.keras.Model(inputs, x), samples=16)
    assert result.binary_layers == []
    assert sum(reason in layer.note for layer in result.float_layers) == 2, result.float_layers
    assert result.verification.passed, result.verification.summary()


def test_binary_layers_without_a_binary_op_stay_float_and_say_so() -> None:
    """QuantSeparableConv2D: its depthwise part reads the binarized input (BinaryConv2D), its pointwise part the
    float depthwise output; QuantConv2DTranspose reads a binarized input, but no binary op computes it."""
    import larq as lq

    inputs = tf.keras.Input((12, 12, 8))
    x = tf.keras.layers.BatchNormalization(beta_initializer="random_normal")(tf.keras.layers.Conv2D(16, 3)(inputs))
    x = lq.layers.QuantSeparableConv2D(32, 3, padding="same", input_quantizer="ste_sign", use_bias=False,
                                       depthwise_quantizer="ste_sign", pointwise_quantizer="ste_sign")(x)
    x = tf.keras.layers.BatchNormalization(beta_initializer="random_normal")(x)
    x = lq.layers.QuantConv2DTranspose(8, 3, strides=2, padding="same", input_quantizer="ste_sign",
                                       kernel_quantizer="ste_sign")(x)
    result = convert_with_report(tf.keras.Model(inputs, tf.keras.layers.GlobalAveragePooling2D()(x)), samples=16)
    assert [layer.op for layer in result.binary_layers] == ["BinaryConv2D"]
    notes = {layer.op: layer.note for layer in result.float_layers if "binarized" in layer.note}
    assert notes["ConvTranspose"] == "input is binarized, but no binary op computes ConvTranspose, so the layer " \
        "stays float", notes
    assert result.verification.passed, result.verification.summary()


@pytest.mark.parametrize("form", ["model object", "SavedModel"])
def test_binarizer_written_as_a_plain_function_becomes_binary_layers(tmp_path: Path, form: str) -> None:
    model = function_binarizer()
    source = model
    if form == "SavedModel":
        model.save(tmp_path / "saved")
        source = tmp_path / "saved"
    result = convert_with_report(source, samples=32)
    assert result.verification.outputs_agree, result.verification.summary()
    assert [layer.op for layer in result.binary_layers] == ["BinaryConv2D", "BinaryDense"]
    assert_matches_keras(model, result.model, (8, 8, 3), batch=32, seed=4)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_lambda_layers_load_only_with_the_trust_opt_in(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"lambda{suffix}"
    lambda_model().save(path)
    with pytest.raises(ConversionError, match="has a Lambda layer.*--trust-lambda.*trust_lambda=True"):
        convert(path)
    result = convert_with_report(path, trust_lambda=True)
    assert result.verification.passed and len(result.binary_layers) == 1


def test_keras3_file_is_refused_naming_keras_2(tmp_path: Path) -> None:
    """Today's default tf.keras is Keras 3; Larq (and the legacy Keras that loads Larq models) needs Keras 2."""
    path = tmp_path / "k3.keras"
    environment = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    script = f"import keras; keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save({str(path)!r})"
    subprocess.run([sys.executable, "-c", script], check=True, env=environment, capture_output=True)
    with pytest.raises(ConversionError, match=r"saved by Keras 3\..*need Keras 2.*tf_keras"):
        convert(path)


@pytest.mark.parametrize("build", [vgg_style, bireal_style])
def test_a_flipped_weight_bit_is_never_excused_as_a_tie(build) -> None:
    """One weight bit flipped in the first binary conv with float output, whose values the next binarizer reads:
    verification finds the disagreement and does not call it a sign tie (the tie tolerance is the source's own
    float32 rounding, never the difference the broken layer makes)."""
    model = build()
    result = convert_with_report(model, samples=16)
    assert result.verification.passed
    broken = onnx.ModelProto()
    broken.CopyFrom(result.model)
    first = next(n for n in broken.graph.node if n.op_type == "BinaryConv2D" and
                 not any(a.name == "packed_output" and a.i == 1 for a in n.attribute))
    weights = next(t for t in broken.graph.initializer if t.name == first.input[1])
    bits = onnx.numpy_helper.to_array(weights).copy()
    bits.flat[0] ^= 1
    weights.CopyFrom(onnx.numpy_helper.from_array(bits, weights.name))
    source = load_source(model, lambda stage: None)
    feeds = random_inputs(broken, 16, 0)
    verification = verify(source.predict(feeds), source.float_model, broken, feeds, source.values, [], source.predict)
    assert not verification.passed and not verification.explained_by_ties, verification.summary()
    assert verification.first_flip is None or verification.first_flip.others > 0, verification.summary()


def test_converted_model_validates_and_declares_custom_op_shapes() -> None:
    result = convert_with_report(vgg_style(), verify_result=False)
    onnx.checker.check_model(result.model)
    # The lowest IR version for its opsets (opset 17: IR 8), which onnxruntime 1.22 (IR <= 10) also reads.
    assert result.model.ir_version == 8
    declared = {v.name: v for v in [*result.model.graph.value_info, *result.model.graph.output]}
    for node in result.model.graph.node:
        if node.domain == "bnn2onnx":
            dims = declared[node.output[0]].type.tensor_type.shape.dim
            assert len(dims) >= 2 and all(d.HasField("dim_value") for d in dims[1:]), node.name


@pytest.mark.parametrize("name", ["QuickNet", "QuickNetSmall", "BiRealNet", "BinaryAlexNet", "XNORNet",
                                  "BinaryDenseNet28"])
def test_larq_zoo_model_converts_every_binary_layer_and_agrees(name: str) -> None:
    import larq_zoo  # keras_models, imported above, has set up legacy Keras for larq
    from keras_models import randomize_batch_norms

    factory = getattr(larq_zoo.literature, name, None) or getattr(larq_zoo.sota, name)
    model = randomize_batch_norms(factory(weights=None, input_shape=(224, 224, 3)))
    result = convert_with_report(model, samples=16)
    counts = op_counts(result.model)
    assert counts["BinaryConv2D"] + counts["BinaryDense"] == binary_layer_count(model), counts
    verification = result.verification
    assert verification.passed, verification.summary()
    assert verification.samples >= 16
    # A sign tie (the source's own pre-activation within float32 rounding of 0) can cascade through a random-
    # weight network far enough to move a near-uniform softmax's argmax; that is the one accepted difference,
    # and it is detected and reported, never assumed.
    assert verification.argmax_agreement == 1.0 or verification.explained_by_ties, verification.summary()


def test_quicknet_converts_to_at_most_4_4_megabytes() -> None:
    """larq_zoo QuickNet as the zoo builds it (weights=None): 53 MB as float ONNX."""
    import larq_zoo

    result = convert_with_report(larq_zoo.sota.QuickNet(weights=None, input_shape=(224, 224, 3)),
                                 verify_result=False)
    assert result.float_bytes > 50e6
    assert result.converted_bytes <= 4.4e6, result.converted_bytes
