"""bnn2onnx: binarized neural networks as ONNX with bit-packed custom ops for onnxruntime.

Running a converted model needs only onnxruntime and numpy (`inference_session`, `library_path`,
`session_options`); the converter, with onnx-graphsurgeon and the frontends, is imported on first use, so a device
that only runs models does not need it.
"""

from typing import Any

from bnn2onnx.errors import ConversionError
from bnn2onnx.runtime import inference_session, library_path, session_options

__all__ = ["ConversionError", "UnrecognisedBinarizerWarning", "convert", "convert_with_report", "inference_session",
           "library_path", "session_options"]
__version__ = "0.1.0"

_CONVERTER_NAMES = ("UnrecognisedBinarizerWarning", "convert", "convert_with_report")


def __getattr__(name: str) -> Any:
    if name in _CONVERTER_NAMES:
        from bnn2onnx import converter

        return getattr(converter, name)
    raise AttributeError(f"module 'bnn2onnx' has no attribute {name!r}")
