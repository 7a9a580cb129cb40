"""PyTorch to ONNX: train a small BNN written the way PyTorch BNN code is written (a straight-through sign as an
autograd.Function, XNOR-scaled binary convs, batch norm, a residual, a float first and last layer) on
scikit-learn's 8x8 digits, convert it with bnn2onnx.convert through both torch exporters, and compare the
onnxruntime predictions with PyTorch's on the test set.

    python examples/pytorch_digits_demo.py
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from torch import nn

import bnn2onnx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "models"))
from train_digits_bnn import digits_split  # the Keras demo's data split: NHWC images in [-1, 1]


class SignSTE(torch.autograd.Function):
    """Straight-through sign. Forward: +1 where x >= 0, else -1, as larq's sign. torch.sign would give 0 at an
    exact 0, a third value no binary layer has: trained with torch.sign, this model met one exact 0 among the
    3.7 million values it binarizes on the test images, which verification reports (docs/frontends.md)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return torch.where(x >= 0, 1.0, -1.0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


class XnorConv2d(nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight.abs().mean(dim=(1, 2, 3), keepdim=True)
        return F.conv2d(SignSTE.apply(x), SignSTE.apply(self.weight) * scale, None, self.stride, self.padding)


class DigitsBnn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64))
        self.binary1 = nn.Sequential(XnorConv2d(64, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64))
        self.binary2 = nn.Sequential(XnorConv2d(64, 128, 3, padding=1, bias=False), nn.MaxPool2d(2),
                                     nn.BatchNorm2d(128))
        self.head = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = x + self.binary1(x)  # a residual around a binary conv (Bi-Real style)
        x = self.binary2(x)
        return self.head(x.mean((2, 3)))


def nchw(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(15):
        for batch in torch.randperm(len(x)).split(64):
            optimizer.zero_grad()
            F.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    model.eval()


def main() -> None:
    torch.manual_seed(0)
    x_train, x_test, y_train, y_test = (np.ascontiguousarray(a) for a in digits_split())
    model = DigitsBnn()
    train(model, nchw(x_train), torch.from_numpy(y_train).long())
    test = nchw(x_test)
    with torch.no_grad():
        torch_logits = model(test).numpy()
    torch_pred = torch_logits.argmax(1)
    print(f"digits test set ({len(y_test)} images): PyTorch accuracy {np.mean(torch_pred == y_test):.2%}")
    agree = True
    for exporter in ("dynamo", "legacy"):
        result = bnn2onnx.convert_with_report(model, test[:2], exporter=exporter)
        session = bnn2onnx.inference_session(result.model)
        onnx_logits = session.run(None, {session.get_inputs()[0].name: test.numpy()})[0]
        onnx_pred = onnx_logits.argmax(1)
        buffer = io.BytesIO()
        onnx.save(result.model, buffer)
        print(f"  {exporter} exporter: {len(result.binary_layers)} binary layers, ONNX accuracy "
              f"{np.mean(onnx_pred == y_test):.2%}, prediction agreement {np.mean(onnx_pred == torch_pred):.2%}, "
              f"max |logit difference| {np.abs(onnx_logits - torch_logits).max():.2e}, "
              f"{buffer.tell() / 1024:.0f} KiB (float ONNX {result.float_bytes / 1024:.0f} KiB)")
        agree &= bool(np.array_equal(onnx_pred, torch_pred))
    if not agree:
        sys.exit("converted predictions differ from PyTorch's")


if __name__ == "__main__":
    main()
