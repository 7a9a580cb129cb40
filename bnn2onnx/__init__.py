"""bnn2onnx: binarized neural networks as ONNX with bit-packed custom ops for onnxruntime."""

from bnn2onnx.converter import UnrecognisedBinarizerWarning, convert, convert_with_report
from bnn2onnx.errors import ConversionError
from bnn2onnx.runtime import inference_session, library_path, session_options

__all__ = ["ConversionError", "UnrecognisedBinarizerWarning", "convert", "convert_with_report", "inference_session",
           "library_path", "session_options"]
__version__ = "0.1.0"
