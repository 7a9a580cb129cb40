"""PyTorch frontend: a torch.nn.Module, or a saved torch.export program (.pt2) -> canonical float ONNX through
torch.onnx (the dynamo exporter by default, or the legacy TorchScript one), batch dimension left free.

Before anything is optimised, the exported graph is run in onnxruntime and compared with the module on the same
inputs, and before that the module runs once with its torch calls watched: a forward that assigns to `.data`
(BinaryNet.pytorch's `input.data = sign(input.data)`, `self.weight.data = sign(self.weight.org)`) is invisible to
the exporters (the legacy one drops the activation sign, the dynamo one fails), so the conversion stops and
names the module that does it.

torch (and onnxscript for the dynamo exporter) are optional: they are imported only here.
"""

from __future__ import annotations

import inspect
import io
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from bnn2onnx.errors import ConversionError, first_line
from bnn2onnx.frontends.onnx_float import onnxruntime_predict
from bnn2onnx.verification import compare_outputs, differing_input_indices, unstable_source, values_on_sign_boundaries

EXPORTERS = ("dynamo", "legacy")
# The exported graph must reproduce the module to this relative tolerance (float reassociation only), on the
# example input and this many random inputs.
EXPORT_TOLERANCE = 1e-4
CHECK_SAMPLES = 8


def require_torch():
    try:
        import torch
    except ImportError as error:
        raise ConversionError('converting a PyTorch model needs the torch extra: pip install "bnn2onnx[torch]"') \
            from error
    return torch


def is_torch_model(source: Any) -> bool:
    """A torch.nn.Module or torch.export program (without importing torch: if it is not loaded, it is neither)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(source, (torch.nn.Module, torch.export.ExportedProgram))


@contextmanager
def _eval_mode(module: Any) -> Iterator[None]:
    """Inference semantics (BN statistics, no dropout) for the duration, the module's own mode restored after."""
    torch = require_torch()
    if not isinstance(module, torch.nn.Module) or isinstance(module, torch.fx.GraphModule):
        yield  # a torch.export program's module is already in the mode it was exported in
        return
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


def load_exported_program(path: str | Path) -> tuple[Any, tuple]:
    """(program, example inputs) from a .pt2 file written by torch.export.save."""
    torch = require_torch()
    if not Path(path).is_file():
        raise ConversionError(f"{path}: no such file")
    try:
        program = torch.export.load(str(path))
    except Exception as error:  # torch raises several types for corrupt archives
        raise ConversionError(f"{path}: not a torch.export program: {first_line(error)}") from error
    args, kwargs = program.example_inputs or ((), {})
    if not args or kwargs:
        raise ConversionError(f"{path}: the program has no positional example inputs to export it with")
    return program, tuple(args)


def example_tuple(example_input: Any) -> tuple:
    torch = require_torch()
    inputs = tuple(example_input) if isinstance(example_input, (tuple, list)) else (example_input,)
    if not inputs or not all(isinstance(x, torch.Tensor) for x in inputs):
        raise ConversionError("give example_input: a torch.Tensor (or a tuple of them) of the model's input shape")
    return inputs


def _input_names(module: Any, count: int) -> list[str]:
    forward = module.forward if hasattr(module, "forward") else module
    try:
        names = [p.name for p in inspect.signature(forward).parameters.values()
                 if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        names = []
    return names[:count] if len(names) >= count else [f"input_{i}" for i in range(count)]


def _export(module: Any, inputs: tuple, exporter: str, names: list[str]) -> onnx.ModelProto:
    torch = require_torch()
    if exporter == "legacy":
        if isinstance(module, torch.export.ExportedProgram):
            raise ConversionError("a torch.export program exports with the dynamo exporter only")
        buffer = io.BytesIO()
        with warnings.catch_warnings():  # it is deprecated, and chosen here on purpose
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(module, inputs, buffer, dynamo=False, input_names=names,
                              dynamic_axes={name: {0: "batch"} for name in names})
        return onnx.load_from_string(buffer.getvalue())
    try:
        import onnxscript  # noqa: F401  (the dynamo exporter's dependency, missing from torch's own)
    except ImportError as error:
        raise ConversionError("the dynamo exporter needs onnxscript: pip install 'bnn2onnx[torch]' "
                              "(or use exporter='legacy')") from error
    dynamic = None if isinstance(module, torch.export.ExportedProgram) else \
        tuple({0: torch.export.Dim("batch")} for _ in inputs)
    program = torch.onnx.export(module, inputs, dynamo=True, dynamic_shapes=dynamic, optimize=True,
                                verbose=False)
    return program.model_proto


def torch_predict(module: Any, names: list[str]) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    """The module's first output on numpy feeds (by ONNX input name), without gradients."""
    torch = require_torch()

    def predict(feeds: dict[str, np.ndarray]) -> np.ndarray:
        with torch.no_grad(), _eval_mode(module):
            out = module(*[torch.from_numpy(np.ascontiguousarray(feeds[name])) for name in names])
        first = out[0] if isinstance(out, (tuple, list)) else out
        return first.detach().cpu().numpy()

    return predict


def _data_assignments(module: Any, inputs: tuple) -> list[str]:
    """The modules (by name and class) whose forward assigns to some tensor's `.data`, from one run of the module
    on `inputs` with every torch call watched."""
    torch = require_torch()
    from torch.overrides import TorchFunctionMode

    stack: list[str] = []
    found: dict[str, None] = {}

    class WatchDataWrites(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if getattr(func, "__name__", "") == "__set__" and getattr(getattr(func, "__self__", None),
                                                                      "__name__", "") == "data":
                found.setdefault(stack[-1] if stack else "forward")
            return func(*args, **(kwargs or {}))

    def leave(*_) -> None:  # a forward hook's return value would replace the output
        stack.pop()

    handles = []
    for name, sub in module.named_modules():
        label = f"{name or 'the model'} ({type(sub).__name__})"
        handles.append(sub.register_forward_pre_hook(lambda *_, label=label: stack.append(label)))
        handles.append(sub.register_forward_hook(leave))
    state = {name: value.clone() for name, value in module.state_dict().items()}
    try:
        with torch.no_grad(), _eval_mode(module), WatchDataWrites():
            module(*[x.clone() for x in inputs])
    finally:
        for handle in handles:
            handle.remove()
        module.load_state_dict(state)  # what that forward overwrote: the check leaves the module as it was
    return list(found)


def _refuse_data_assignments(module: Any, inputs: tuple) -> None:
    writers = _data_assignments(module, inputs)
    if writers:
        raise ConversionError(
            f"forward() of {', '.join(writers[:3])} assigns to `.data` (as BinaryNet.pytorch's "
            "`input.data = sign(input.data)` and `weight.data = sign(weight.org)` do): no exporter sees that, so "
            "the exported graph would drop the sign and compute something else than the module. Binarize with a "
            "function of the tensor instead (torch.sign in an autograd.Function, or the detach trick) and leave "
            "parameters unchanged in forward")


def _check_export(module: Any, model: onnx.ModelProto, inputs: tuple, names: list[str]) -> None:
    """Refuses an export that does not compute what the module computes: every input must agree to
    EXPORT_TOLERANCE, but for proven sign ties (verification.unstable_source: the module's own output on that
    input jumps when the input moves by float32 rounding, so onnxruntime and PyTorch may round a binarizer's input
    to different signs there)."""
    rng = np.random.default_rng(0)
    feeds = {name: np.concatenate([x.detach().cpu().numpy(),
                                   rng.standard_normal((CHECK_SAMPLES, *x.shape[1:])).astype(np.float32)])
             for name, x in zip(names, inputs)}
    predict = torch_predict(module, names)
    expected = predict(feeds)
    actual = onnxruntime_predict(model)(feeds)
    if actual.shape != expected.shape:
        raise ConversionError(f"the exported ONNX graph gives outputs of shape {actual.shape}, the module "
                              f"{expected.shape}")
    differing = differing_input_indices(expected, actual, EXPORT_TOLERANCE)
    unproven = [i for i in differing if not unstable_source(predict, feeds, i)]
    if not unproven:
        return
    diff, scale, _ = compare_outputs(expected, actual)
    differences = (f"the exported ONNX graph does not compute what the module computes ({len(unproven)} of "
                   f"{len(expected)} inputs differ, by up to {diff:.3g} of max |output| {scale:.3g}")
    invisible = ("something in forward is invisible to the exporter, such as a Python number computed from a "
                 "tensor (frozen at its example value) or an in-place write the tracer does not record")
    boundary = values_on_sign_boundaries(model, feeds, unproven)
    if boundary:
        raise ConversionError(
            f"{differences}; {boundary} values reaching a sign there are within float32 rounding of 0, where "
            "PyTorch and onnxruntime may round to different signs): an untrained model's batch norms (the "
            "identity) put sums of +-1 on the sign's boundary, so convert the trained model or give the batch "
            f"norms trained statistics; if it is trained, {invisible}")
    raise ConversionError(f"{differences}, and are not sign ties): {invisible}")


def torch_to_float_onnx(module: Any, example_input: Any, exporter: str = "dynamo") \
        -> tuple[onnx.ModelProto, Callable[[dict[str, np.ndarray]], np.ndarray]]:
    """(float ONNX, the module's own predict) for a torch.nn.Module or torch.export program; checked as above."""
    torch = require_torch()
    if exporter not in EXPORTERS:
        raise ConversionError(f"unknown exporter {exporter!r}: choose one of {', '.join(EXPORTERS)}")
    inputs = example_tuple(example_input)
    program = isinstance(module, torch.export.ExportedProgram)
    runnable = module.module() if program else module
    if not program:  # a program is a traced graph already: no Python forward runs
        _refuse_data_assignments(module, inputs)
    with _eval_mode(runnable):
        try:
            model = _export(module, inputs, exporter, _input_names(runnable, len(inputs)))
        except ConversionError:
            raise
        except Exception as error:  # the exporters raise many types
            raise ConversionError(f"torch.onnx ({exporter} exporter) failed: {first_line(error)}") from error
    names = [i.name for i in model.graph.input][:len(inputs)]
    _check_export(runnable, model, inputs, names)
    return model, torch_predict(runnable, names)
