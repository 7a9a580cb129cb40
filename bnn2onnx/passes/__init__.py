"""Optimisation passes over ONNX, one rewrite family per file, run in one ordered pipeline.

Every pass takes an onnx-graphsurgeon graph, rewrites it in place, and returns a PassResult (rewrite count and
refusals with reasons) so `convert` can say what changed and why a layer stayed float.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import onnx
import onnx_graphsurgeon as gs

from bnn2onnx.ops import schema
from bnn2onnx.passes import (
    cancel_pack_unpack,
    cancel_straight_through,
    constant_reshape_targets,
    conv1d_as_conv2d,
    dedupe_constants,
    dense_over_rows,
    drop_broadcast_expands,
    fold_constants,
    fold_input_transpose,
    fold_output_affine,
    fuse_binary_conv,
    fuse_binary_dense,
    fuse_binary_maxpool,
    fuse_final_relu,
    fuse_input_packing,
    fuse_output_packing,
    fuse_residual_add,
    fuse_threshold_output,
    pool_before_binarizer,
    recognise_binarizers,
    sink_layout_ops,
)
from bnn2onnx.passes.graph_tools import PassResult, name_nodes_uniquely

Pass = Callable[[gs.Graph], PassResult]
Stage = tuple[Pass, ...]

# Two stages, with shapes inferred before each: the first removes what exporters leave of training-time code
# (broadcasting Expands, straight-through estimators, weight binarizers as constant subgraphs, reshape targets
# computed from shapes), so that the second sees plain layers with known shapes.
# The order matters:
# - straight-through estimators before folding, so scaled sign weights fold from the sign itself;
# - binarizers first in the second stage: every later pass matches on the canonical BitUnpack(BitPack(x));
# - 1-D convs reading a binarizer as 2-D convs (an Unsqueeze before them, a Squeeze after), and dense layers
#   over the rows of a sequence as one over the rows stacked (a Flatten before, a Reshape after);
# - layout ops next (Transpose, Reshape), so each binary Conv sees its binarizer (and +1 Pad) directly; then
#   max-pools of binarized values above their binarizers, and layout ops again (tf2onnx wraps a MaxPool in them);
# - conv and dense fusion create the binary layers the remaining passes refine;
# - max-pool before thresholds, so a layer -> BN -> MaxPool -> binarizer chain ends in a BitPack the
#   threshold pass can absorb;
# - thresholds before affine folding: thresholds are computed from the float chain as the source model computes
#   it, before folding changes its rounding; what is left is folded into float outputs;
# - a shortcut's Add after that, once the layer's output is the tensor the Add reads, and a ReLU after the Add;
# - then packed tensors that are unpacked and repacked cancel; a BitPack of a binary conv's float output becomes
#   that layer's packed output 1, and a BitPack left with one binary reader is fused into that reader;
# - a float stem conv reading the NHWC image through a Transpose then reads the image in place;
# - last, equal constants created along the way are shared.
CANONICALISE: Stage = (
    drop_broadcast_expands.run,
    cancel_straight_through.run,
    fold_constants.run,
    constant_reshape_targets.run,
)
# The binarizers in canonical form, placed where the layers read them: exact rewrites of the float model, which
# verification's reference (verification.binarized_reference) runs too.
PLACE_BINARIZERS: Stage = (
    recognise_binarizers.run,
    conv1d_as_conv2d.run,
    dense_over_rows.run,
    sink_layout_ops.run,
    pool_before_binarizer.run,
    sink_layout_ops.run,
)
BINARIZE: Stage = PLACE_BINARIZERS + (
    fuse_binary_conv.run,
    fuse_binary_dense.run,
    fuse_binary_maxpool.run,
    fuse_threshold_output.run,
    fold_output_affine.run,
    fuse_residual_add.run,
    fuse_final_relu.run,
    cancel_pack_unpack.run,
    fuse_output_packing.run,
    fuse_input_packing.run,
    fold_input_transpose.run,
    dedupe_constants.run,
)
PIPELINE: tuple[Stage, ...] = (CANONICALISE, BINARIZE)


@dataclass
class PipelineReport:
    results: list[PassResult] = field(default_factory=list)
    op_counts_before: Counter = field(default_factory=Counter)
    op_counts_after: Counter = field(default_factory=Counter)

    def op_changes(self) -> dict[str, int]:
        ops = set(self.op_counts_before) | set(self.op_counts_after)
        changes = {op: self.op_counts_after[op] - self.op_counts_before[op] for op in sorted(ops)}
        return {op: change for op, change in changes.items() if change}


def op_counts(graph: gs.Graph) -> Counter:
    return Counter(node.op for node in graph.nodes)


def _with_inferred_shapes(model: onnx.ModelProto) -> gs.Graph:
    # data_prop: shapes computed in the graph (Shape -> Gather -> Concat -> Reshape, as tf2onnx writes Flatten)
    return gs.import_onnx(onnx.shape_inference.infer_shapes(model, data_prop=True))


def optimize(model: onnx.ModelProto, stages: tuple[Stage, ...] = PIPELINE) -> tuple[onnx.ModelProto, PipelineReport]:
    """Runs the passes over a float ONNX model; returns the rewritten model and what each pass did."""
    graph = _with_inferred_shapes(model)
    name_nodes_uniquely(graph)
    report = PipelineReport(op_counts_before=op_counts(graph))
    for index, stage in enumerate(stages):
        if index:
            graph = _with_inferred_shapes(gs.export_onnx(graph))
        for run_pass in stage:
            report.results.append(run_pass(graph))
            graph.cleanup().toposort()
    name_nodes_uniquely(graph)
    report.op_counts_after = op_counts(graph)
    graph.import_domains = None
    out = gs.export_onnx(graph)
    if not any(o.domain == schema.DOMAIN for o in out.opset_import):
        out.opset_import.append(schema.opset_import())
    # The lowest IR version that holds the model's opsets, not the newest one onnx writes by default: an older
    # onnxruntime on a device refuses a newer IR version (1.22 reads up to 10) although it runs every op.
    out.ir_version = onnx.helper.find_min_ir_version_for(list(out.opset_import), ignore_unknown=True)
    return out, report
