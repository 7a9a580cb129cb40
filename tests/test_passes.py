"""Passes on tiny hand-built float ONNX models: the op types after the pass, the rewrite counts, the reason a
layer was refused, and numerical equality with onnxruntime running the float model."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest
from cli_runner import run_cli
from onnx import TensorProto, helper, numpy_helper
from ort_helpers import run, session

import bnn2onnx
from bnn2onnx.converter import UnrecognisedBinarizerWarning
from bnn2onnx.passes import optimize

RNG = np.random.default_rng(0)


def model(nodes: list[onnx.NodeProto], inits: dict[str, np.ndarray], shape: list) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def where_binarizer(x: str, out: str, compare: str = "GreaterOrEqual") -> list[onnx.NodeProto]:
    return [helper.make_node(compare, [x, "zero"], [out + "_c"]),
            helper.make_node("Where", [out + "_c", "one", "minus_one"], [out])]


SIGN_CONSTANTS = {"zero": np.float32(0), "one": np.float32(1), "minus_one": np.float32(-1)}


def results(report) -> dict[str, tuple[int, list]]:
    """Rewrites and refusals per pass, summed over a pass that runs twice."""
    summed: dict[str, tuple[int, list]] = {}
    for r in report.results:
        rewrites, refused = summed.get(r.name, (0, []))
        summed[r.name] = (rewrites + r.rewrites, refused + list(r.refused))
    return summed


def test_where_binarizer_and_conv_become_binary_conv_and_match_float() -> None:
    weights = (RNG.choice([-1.0, 1.0], (20, 40, 3, 3)) * RNG.uniform(0.5, 2, (20, 1, 1, 1))).astype(np.float32)
    nodes = where_binarizer("x", "s") + [helper.make_node("Conv", ["s", "w"], ["y"], pads=[1, 0, 0, 1])]
    source = model(nodes, {**SIGN_CONSTANTS, "w": weights}, ["n", 40, 7, 7])
    converted, report = optimize(source)
    assert Counter(n.op_type for n in converted.graph.node) == Counter({"BinaryConv2D": 1})
    assert results(report)["fuse_binary_conv"] == (1, [])
    x = RNG.standard_normal((3, 40, 7, 7)).astype(np.float32)
    x[0, 0, 0, 0] = 0.0  # 0 binarizes to +1 in both
    expected = run(source, {"x": x}, custom_ops=False)
    np.testing.assert_allclose(run(converted, {"x": x}), expected, rtol=1e-5, atol=1e-5)


def test_strict_greater_is_not_a_binarizer() -> None:
    """Where(x > 0, 1, -1) maps 0 to -1: not the ops' sign, so nothing is converted."""
    nodes = where_binarizer("x", "s", compare="Greater") + [helper.make_node("Conv", ["s", "w"], ["y"])]
    source = model(nodes, {**SIGN_CONSTANTS, "w": np.ones((4, 8, 1, 1), np.float32)}, [1, 8, 4, 4])
    converted, _ = optimize(source)
    assert "BinaryConv2D" not in {n.op_type for n in converted.graph.node}


def test_other_spellings_of_sign_are_found_by_evaluating_them() -> None:
    """Cast(x >= 0) * 2 - 1 before a zero-padded conv, and where(sign(x) == 0, 1, sign(x)) (a PyTorch spelling)
    padded with -1 before another: both are sign with 0 -> +1, found by what they compute."""
    nodes = [helper.make_node("GreaterOrEqual", ["x", "zero"], ["c"]),
             helper.make_node("Cast", ["c"], ["cf"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["cf", "two"], ["c2"]), helper.make_node("Sub", ["c2", "one"], ["s1"]),
             helper.make_node("Conv", ["s1", "w1"], ["h"], pads=[1, 1, 1, 1]),
             helper.make_node("Sign", ["h"], ["hs"]), helper.make_node("Equal", ["hs", "zero"], ["hz"]),
             helper.make_node("Where", ["hz", "one", "hs"], ["s2"]),
             helper.make_node("Pad", ["s2", "pads", "minus_one"], ["p2"]),
             helper.make_node("Conv", ["p2", "w2"], ["y"])]
    w1 = RNG.choice([-1.0, 1.0], (16, 8, 3, 3)).astype(np.float32)
    w2 = (RNG.choice([-1.0, 1.0], (4, 16, 3, 3)) * 0.5).astype(np.float32)
    source = model(nodes, {**SIGN_CONSTANTS, "two": np.float32(2), "w1": w1, "w2": w2,
                           "pads": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)}, ["n", 8, 6, 6])
    converted, _ = optimize(source)
    convs = [n for n in converted.graph.node if n.op_type == "BinaryConv2D"]
    assert len(convs) == 2, Counter(n.op_type for n in converted.graph.node)
    pad_values = sorted(next((a.i for a in n.attribute if a.name == "pad_value"), 0) for n in convs)
    assert pad_values == [-1, 0]
    x = RNG.standard_normal((2, 8, 6, 6)).astype(np.float32)
    x[0, :, 2, 2] = 0.0
    np.testing.assert_allclose(run(converted, {"x": x}), run(source, {"x": x}, custom_ops=False), rtol=1e-5,
                               atol=1e-5)


def test_a_float_layer_behind_sign_like_ops_is_named_in_a_warning(tmp_path) -> None:
    """Where(x > 0, 1, -1) maps 0 to -1, so its conv stays float; convert says which layer and which ops."""
    nodes = where_binarizer("x", "s", compare="Greater") + [helper.make_node("Conv", ["s", "w"], ["y"], name="c")]
    onnx.save(model(nodes, {**SIGN_CONSTANTS, "w": np.ones((4, 8, 1, 1), np.float32)}, ["n", 8, 4, 4]),
              tmp_path / "greater.onnx")
    with pytest.warns(UnrecognisedBinarizerWarning, match=r"layer c: .*\(Where <- Greater\)"):
        bnn2onnx.convert(tmp_path / "greater.onnx")


def test_a_steep_clip_is_not_a_binarizer() -> None:
    """Clip(x * 1e6, -1, 1) is +-1 on almost every value, but not on tiny ones: evaluation refuses it."""
    nodes = [helper.make_node("Mul", ["x", "steep"], ["m"]), helper.make_node("Clip", ["m", "minus_one", "one"], ["s"]),
             helper.make_node("Conv", ["s", "w"], ["y"])]
    source = model(nodes, {**SIGN_CONSTANTS, "steep": np.float32(1e6), "w": np.ones((4, 8, 1, 1), np.float32)},
                   [1, 8, 4, 4])
    converted, _ = optimize(source)
    assert "BinaryConv2D" not in {n.op_type for n in converted.graph.node}


def test_conv_whose_weights_are_not_plus_minus_s_is_refused_with_the_reason() -> None:
    weights = RNG.standard_normal((4, 8, 3, 3)).astype(np.float32)
    nodes = where_binarizer("x", "s") + [helper.make_node("Conv", ["s", "w"], ["y"])]
    _, report = optimize(model(nodes, {**SIGN_CONSTANTS, "w": weights}, [1, 8, 5, 5]))
    rewrites, refused = results(report)["fuse_binary_conv"]
    assert rewrites == 0 and len(refused) == 1 and "not +-s per output channel" in refused[0][1]


def test_transposes_around_a_binarizer_cancel() -> None:
    nodes = [helper.make_node("Transpose", ["x"], ["nhwc"], perm=[0, 2, 3, 1])] + where_binarizer("nhwc", "s") + [
        helper.make_node("Transpose", ["s"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "w"], ["y"])]
    source = model(nodes, {**SIGN_CONSTANTS, "w": RNG.choice([-1.0, 1.0], (8, 16, 1, 1)).astype(np.float32)},
                   [2, 16, 3, 3])
    converted, report = optimize(source)
    assert [n.op_type for n in converted.graph.node] == ["BinaryConv2D"]
    assert results(report)["sink_layout_ops"][0] >= 2
    x = RNG.standard_normal((2, 16, 3, 3)).astype(np.float32)
    np.testing.assert_allclose(run(converted, {"x": x}), run(source, {"x": x}, custom_ops=False), rtol=1e-6)


@pytest.mark.parametrize("ceil_mode, pooled_as", [(0, "BinaryMaxPool2D"), (1, "MaxPool")])
def test_max_pool_of_binarized_values_moves_above_the_binarizer(ceil_mode: int, pooled_as: str) -> None:
    """bin -> MaxPool -> Conv (FINN's CNV): the Conv becomes binary; the pooling becomes a BinaryMaxPool2D where
    that op has its attributes (not ceil_mode), else stays a float MaxPool before the binarizer."""
    nodes = where_binarizer("x", "s") + [
        helper.make_node("MaxPool", ["s"], ["p"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                         ceil_mode=ceil_mode),
        helper.make_node("Conv", ["p", "w"], ["y"], pads=[1, 1, 1, 1])]
    source = model(nodes, {**SIGN_CONSTANTS, "w": RNG.choice([-1.0, 1.0], (8, 16, 3, 3)).astype(np.float32)},
                   ["n", 16, 8, 8])
    converted, report = optimize(source)
    ops = Counter(n.op_type for n in converted.graph.node)
    assert ops["BinaryConv2D"] == 1 and ops[pooled_as] == 1 and "Conv" not in ops, ops
    assert results(report)["pool_before_binarizer"] == (1, [])
    x = RNG.standard_normal((3, 16, 8, 8)).astype(np.float32)
    x[:, :, ::3, ::2] = 0.0  # 0 binarizes to +1 in both
    np.testing.assert_array_equal(run(converted, {"x": x}), run(source, {"x": x}, custom_ops=False))


def test_batch_norm_before_the_next_binarizer_becomes_thresholds_with_all_directions() -> None:
    """Negative, positive and zero gamma: directions -1, +1 and a constant channel, exactly as the float model."""
    channels = 6
    gamma = np.array([1.5, -0.7, 0.0, 2.0, -1.0, 0.0], np.float32)
    beta = np.array([0.3, -0.2, 0.5, -1.0, 0.1, -0.4], np.float32)
    nodes = where_binarizer("x", "s1") + [
        helper.make_node("Conv", ["s1", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "g", "b", "m", "v"], ["bn"]),
        *where_binarizer("bn", "s2"),
        helper.make_node("Conv", ["s2", "w2"], ["y"])]
    inits = {**SIGN_CONSTANTS, "w1": RNG.choice([-1.0, 1.0], (channels, 10, 3, 3)).astype(np.float32),
             "g": gamma, "b": beta, "m": RNG.normal(0, 2, channels).astype(np.float32),
             "v": RNG.uniform(0.5, 2, channels).astype(np.float32),
             "w2": RNG.choice([-1.0, 1.0], (3, channels, 1, 1)).astype(np.float32)}
    source = model(nodes, inits, ["n", 10, 6, 6])
    converted, report = optimize(source)
    assert results(report)["fuse_threshold_output"] == (1, [])
    first = next(n for n in converted.graph.node if n.op_type == "BinaryConv2D")
    assert any(a.name == "packed_output" and a.i == 1 for a in first.attribute)
    directions = numpy_helper.to_array(next(t for t in converted.graph.initializer if t.name == first.input[3]))
    assert set(directions.tolist()) == {-1, 0, 1}
    x = RNG.standard_normal((8, 10, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(run(converted, {"x": x}), run(source, {"x": x}, custom_ops=False))


def test_residual_reader_keeps_the_float_output() -> None:
    """The layer's output also feeds an Add (a residual): no thresholds, the batch norm folds into the float
    output instead, and the Add becomes the layer's residual input."""
    nodes = where_binarizer("x", "s1") + [
        helper.make_node("Conv", ["s1", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Mul", ["c1", "scale"], ["bn"]),
        helper.make_node("Add", ["bn", "x"], ["res"]),
        *where_binarizer("res", "s2"),
        helper.make_node("Conv", ["s2", "w2"], ["y"])]
    inits = {**SIGN_CONSTANTS, "w1": RNG.choice([-1.0, 1.0], (8, 8, 3, 3)).astype(np.float32),
             "scale": RNG.uniform(0.5, 1.5, (8, 1, 1)).astype(np.float32),
             "w2": RNG.choice([-1.0, 1.0], (4, 8, 1, 1)).astype(np.float32)}
    source = model(nodes, inits, [1, 8, 5, 5])
    converted, report = optimize(source)
    assert results(report)["fuse_threshold_output"][0] == 0
    assert results(report)["fold_output_affine"][0] == 1
    assert results(report)["fuse_residual_add"][0] == 1
    assert "Add" not in {n.op_type for n in converted.graph.node}
    x = RNG.standard_normal((1, 8, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(run(converted, {"x": x}), run(source, {"x": x}, custom_ops=False), rtol=1e-5,
                               atol=1e-5)


def quicknet_block(residual_of: str, shape: list, x: str = "x", y: str = "y",
                   prefix: str = "") -> tuple[list[onnx.NodeProto], dict[str, np.ndarray]]:
    """QuickNet's block: binary conv -> ReLU -> batch norm -> Add(the block's input `residual_of`); the block reads
    x and writes y, its other names start with `prefix`."""
    s, c, r, bn, w, gamma, beta, mean, var = (prefix + n for n in ("s", "c", "r", "bn", "w", "gamma", "beta", "mean",
                                                                    "var"))
    nodes = where_binarizer(x, s) + [
        helper.make_node("Conv", [s, w], [c], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", [c], [r]),
        helper.make_node("BatchNormalization", [r, gamma, beta, mean, var], [bn]),
        helper.make_node("Add", [bn, residual_of], [y])]
    channels = shape[1]
    inits = {**SIGN_CONSTANTS, w: RNG.choice([-1.0, 1.0], (channels, channels, 3, 3)).astype(np.float32),
             gamma: RNG.uniform(-1.5, 1.5, channels).astype(np.float32),
             beta: RNG.standard_normal(channels).astype(np.float32),
             mean: RNG.standard_normal(channels).astype(np.float32),
             var: RNG.uniform(0.5, 2, channels).astype(np.float32)}
    return nodes, inits


def test_batch_norm_after_relu_and_the_shortcut_add_fold_into_the_layer() -> None:
    """conv -> ReLU -> BN -> Add(x) becomes one BinaryConv2D with post_multiplier/post_bias (the BN, negative
    gammas included) and the residual x, agreeing with onnxruntime on the float model."""
    nodes, inits = quicknet_block("x", ["n", 16, 6, 6])
    source = model(nodes, inits, ["n", 16, 6, 6])
    converted, report = optimize(source)
    assert [n.op_type for n in converted.graph.node] == ["BinaryConv2D"]
    layer = converted.graph.node[0]
    assert len(layer.input) == 7 and layer.input[6] == "x"
    assert results(report)["fold_output_affine"][0] == 2 and results(report)["fuse_residual_add"][0] == 1
    x = RNG.standard_normal((3, 16, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(run(converted, {"x": x}), run(source, {"x": x}, custom_ops=False), rtol=1e-5,
                               atol=1e-5)


def test_next_blocks_packing_moves_into_the_layer_that_writes_the_shortcut() -> None:
    """Two QuickNet blocks: the first layer's output is the second's shortcut and, binarized, its input; the
    first layer then also writes that input packed (its output 1), the second reads it packed."""
    first, first_inits = quicknet_block("x", [1, 16, 6, 6], y="y1", prefix="a_")
    second, second_inits = quicknet_block("y1", [1, 16, 6, 6], x="y1", prefix="b_")
    source = model(first + second, first_inits | second_inits, ["n", 16, 6, 6])
    converted, report = optimize(source)
    assert results(report)["fuse_output_packing"] == (1, [])
    layers = list(converted.graph.node)
    assert [n.op_type for n in layers] == ["BinaryConv2D"] * 2
    assert len(layers[0].output) == 2 and layers[1].input[0] == layers[0].output[1]
    assert layers[1].input[6] == layers[0].output[0]
    x = RNG.standard_normal((2, 16, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(run(converted, {"x": x}), run(source, {"x": x}, custom_ops=False), rtol=1e-5,
                               atol=1e-5)


def test_relu_after_the_shortcut_add_becomes_the_final_activation() -> None:
    """A QuickNet stage ends in Add(shortcut) -> Relu: the Relu joins the layer as its final_activation, after the
    residual, and the result agrees with onnxruntime on the float model (negative sums included)."""
    nodes, inits = quicknet_block("x", [1, 16, 6, 6], y="sum")
    nodes.append(helper.make_node("Relu", ["sum"], ["y"]))
    source = model(nodes, inits, ["n", 16, 6, 6])
    converted, report = optimize(source)
    assert results(report)["fuse_final_relu"] == (1, [])
    assert [n.op_type for n in converted.graph.node] == ["BinaryConv2D"]
    attributes = {a.name: helper.get_attribute_value(a) for a in converted.graph.node[0].attribute}
    assert attributes["final_activation"] == b"RELU"
    x = RNG.standard_normal((2, 16, 6, 6)).astype(np.float32)
    expected = run(source, {"x": x}, custom_ops=False)
    assert (expected == 0).mean() > 0.1, "some sums are negative"
    np.testing.assert_allclose(run(converted, {"x": x}), expected, rtol=1e-5, atol=1e-5)


def test_add_that_broadcasts_or_reads_the_layer_output_stays_separate() -> None:
    """A per-channel Add folds into the bias, but a broadcasting Add of a variable (here x[:, :1]) and an Add whose
    other input is computed from the layer's own output stay Adds."""
    nodes, inits = quicknet_block("x_first", [1, 8, 5, 5])
    nodes.insert(0, helper.make_node("Slice", ["x", "zero_i", "one_i", "one_i"], ["x_first"]))
    inits |= {"zero_i": np.array([0], np.int64), "one_i": np.array([1], np.int64)}
    broadcast, broadcast_report = optimize(model(nodes, inits, [1, 8, 5, 5]))
    assert results(broadcast_report)["fuse_residual_add"][0] == 0
    assert results(broadcast_report)["fuse_residual_add"][1], "the refusal gives its reason"
    nodes, inits = quicknet_block("bn_twice", [1, 8, 5, 5])
    nodes.insert(-1, helper.make_node("Mul", ["bn", "two"], ["bn_twice"]))
    source = model(nodes, inits | {"two": np.float32(2)}, [1, 8, 5, 5])
    self_reading, report = optimize(source)
    assert results(report)["fuse_residual_add"][0] == 0
    x = RNG.standard_normal((1, 8, 5, 5)).astype(np.float32)
    for converted in (broadcast, self_reading):
        assert "Add" in {n.op_type for n in converted.graph.node}
    np.testing.assert_allclose(run(self_reading, {"x": x}), run(source, {"x": x}, custom_ops=False), rtol=1e-5,
                               atol=1e-5)


def nhwc_stem(channels: int, kernel: tuple[int, int], shape: list, **attrs) -> onnx.ModelProto:
    """Conv(Transpose(x)) with a bias: a Keras model's float stem as tf2onnx writes it."""
    nodes = [helper.make_node("Transpose", ["x"], ["nchw"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["nchw", "w", "b"], ["y"], **attrs)]
    inits = {"w": RNG.standard_normal((6, channels) + kernel).astype(np.float32),
             "b": RNG.standard_normal(6).astype(np.float32)}
    return model(nodes, inits, shape)


def test_stem_conv_reads_the_nhwc_image_in_place_and_matches_float() -> None:
    for channels, kernel, attrs in [(3, (3, 3), {"strides": [2, 2], "pads": [0, 0, 1, 1]}),
                                    (1, (5, 5), {"pads": [2, 2, 2, 2], "dilations": [2, 1]}),
                                    (4, (3, 7), {"strides": [1, 3], "pads": [1, 3, 0, 2]})]:
        source = nhwc_stem(channels, kernel, ["n", 9, 11, channels], **attrs)
        converted, report = optimize(source)
        assert [n.op_type for n in converted.graph.node] == ["Reshape", "Conv"]
        assert results(report)["fold_input_transpose"] == (1, [])
        x = RNG.standard_normal((2, 9, 11, channels)).astype(np.float32)
        np.testing.assert_allclose(run(converted, {"x": x}), run(source, {"x": x}, custom_ops=False), rtol=1e-5,
                                   atol=1e-5)


def test_transpose_stays_before_a_conv_of_many_channels_or_dilated_along_the_width() -> None:
    _, many_channels = optimize(nhwc_stem(8, (3, 3), [1, 5, 5, 8]))
    converted, dilated = optimize(nhwc_stem(3, (3, 3), [1, 5, 5, 3], dilations=[1, 2]))
    assert "Transpose" in {n.op_type for n in converted.graph.node}
    assert results(many_channels)["fold_input_transpose"] == results(dilated)["fold_input_transpose"] == (0, [])


def test_cli_converts_a_float_onnx_file_and_verifies_against_onnxruntime(tmp_path) -> None:
    weights = RNG.choice([-1.0, 1.0], (16, 8, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w0"], ["stem"], pads=[1, 1, 1, 1])] + where_binarizer("stem", "s") + [
        helper.make_node("Conv", ["s", "w"], ["y"], pads=[1, 1, 1, 1])]
    source = model(nodes, {**SIGN_CONSTANTS, "w0": RNG.standard_normal((8, 3, 3, 3)).astype(np.float32),
                           "w": weights}, ["n", 3, 8, 8])
    onnx.save(source, tmp_path / "float.onnx")
    result = run_cli("convert", str(tmp_path / "float.onnx"), "-o", str(tmp_path / "b.onnx"))
    assert result.returncode == 0, result.stderr
    assert "verification: agree" in result.stdout and "1 binary layers" in result.stdout
    converted = onnx.load(tmp_path / "b.onnx")
    x = RNG.standard_normal((4, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(run(converted, {"x": x}), run(source, {"x": x}, custom_ops=False), rtol=1e-5,
                               atol=1e-4)


def test_verification_accepts_only_proven_export_ties() -> None:
    """When the converted model computes what the float ONNX computes, an input on which the source differs from
    that float ONNX passes only as a proven tie: the source's own output there jumps when the input moves by
    float32 rounding. The same difference on an input where the source is stable fails, however few such inputs
    there are."""
    from bnn2onnx.verification import verify

    weights = RNG.choice([-1.0, 1.0], (8, 8, 3, 3)).astype(np.float32)
    nodes = where_binarizer("x", "s") + [helper.make_node("Conv", ["s", "w"], ["y"], pads=[1, 1, 1, 1])]
    source = model(nodes, {**SIGN_CONSTANTS, "w": weights}, ["n", 8, 5, 5])
    converted, _ = optimize(source)
    feeds = {"x": RNG.standard_normal((8, 8, 5, 5)).astype(np.float32)}
    exported = run(source, feeds, custom_ops=False)
    boundary = feeds["x"][3, 0, 0, 0]

    def source_predict(batch: dict[str, np.ndarray]) -> np.ndarray:
        """The float model, plus a step just above input 3's first value: input 3 sits on a decision boundary."""
        first = batch["x"][:, 0, 0, 0]
        step = ((first >= boundary) & (first < boundary + 1e-3)).astype(np.float32)
        return run(source, batch, custom_ops=False) + step[:, None, None, None]

    source_outputs = source_predict(feeds)
    result = verify(source_outputs, source, converted, feeds, zero_sign_inputs=[], source_predict=source_predict)
    assert (result.export_differences, result.export_ties) == (1, 1) and result.passed, result.summary()
    assert "each a proven sign tie" in result.summary()
    one_input_off = exported.copy()
    one_input_off[5] += 1.0  # the source is stable there: not a tie
    result = verify(one_input_off, source, converted, feeds, zero_sign_inputs=[], source_predict=source_predict)
    assert (result.export_differences, result.export_ties) == (1, 0) and not result.passed
    assert "the converter changed nothing" in result.summary() and "0 of them proven" in result.summary()

def test_verification_proves_each_differing_input_at_its_own_first_flip() -> None:
    """Input 0 differs through a tie at the first binarizer; input 1 through a clear flip at the second one. The
    first binarizer with any flip holds only ties, but that proves nothing about input 1: verification fails.
    With input 1's flip a tie too, it passes."""
    from bnn2onnx.verification import verify

    w1 = RNG.choice([-1.0, 1.0], (8, 8, 3, 3)).astype(np.float32)
    w2 = RNG.choice([-1.0, 1.0], (8, 8, 3, 3)).astype(np.float32)
    nodes = (where_binarizer("x", "s1") + [helper.make_node("Conv", ["s1", "w1"], ["y1"], pads=[1, 1, 1, 1])] +
             where_binarizer("y1", "s2") + [helper.make_node("Conv", ["s2", "w2"], ["y"], pads=[1, 1, 1, 1])])
    source = model(nodes, {**SIGN_CONSTANTS, "w1": w1, "w2": w2}, ["n", 8, 5, 5])
    converted, _ = optimize(source)
    feeds = {"x": RNG.standard_normal((4, 8, 5, 5)).astype(np.float32) + 0.5}
    exact = run(source, feeds, custom_ops=False)
    exposed = onnx.ModelProto()
    exposed.CopyFrom(source)
    exposed.graph.output.append(helper.make_tensor_value_info("y1", TensorProto.FLOAT, None))
    y1_values = session(exposed, custom_ops=False).run(["y1"], feeds)[0]

    def source_values(second_is_tie: bool):
        x, y = feeds["x"].copy(), y1_values.copy()
        x[0, 0, 0, 0] = -1e-7 if x[0, 0, 0, 0] >= 0 else 1e-7  # the source rounds input 0 to the other sign
        y[1, 0, 2, 2] = (-1e-9 if second_is_tie else -3.0) * np.sign(y[1, 0, 2, 2] or 1.0)
        return lambda batch, names: {"x": x, "y1": y}

    outputs = exact.copy()
    outputs[:2] += 1.0  # the source's answers differ on inputs 0 and 1
    failed = verify(outputs, source, converted, feeds, source_values(False), zero_sign_inputs=[])
    assert not failed.passed and (failed.differing_inputs, failed.tie_inputs) == (2, 1), failed.summary()
    assert failed.first_flip.tensor == "x" and failed.first_flip.others == 0, failed.summary()
    passed = verify(outputs, source, converted, feeds, source_values(True), zero_sign_inputs=[])
    assert passed.passed and (passed.differing_inputs, passed.tie_inputs) == (2, 2), passed.summary()
