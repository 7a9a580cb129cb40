"""PyTorch BNNs written the way public PyTorch BNN code writes them (BinaryNet, XNOR-Net, Bi-Real Net, ReActNet).

Nothing here knows about bnn2onnx: these are the sources the converter must reproduce.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SignSTE(torch.autograd.Function):
    """BinaryNet's straight-through sign: forward torch.sign (0 -> 0), backward clipped identity."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return torch.sign(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


class XnorConv2d(nn.Conv2d):
    """XNOR-Net weights: sign(W) scaled by the mean |W| of each output channel; activations through SignSTE."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight.abs().mean(dim=(1, 2, 3), keepdim=True)
        return F.conv2d(SignSTE.apply(x), SignSTE.apply(self.weight) * scale, self.bias, self.stride,
                        self.padding)


class XnorConv1d(nn.Conv1d):
    """XnorConv2d over one axis (keyword spotting, ECG and other sequence BNNs)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight.abs().mean(dim=(1, 2), keepdim=True)
        return F.conv1d(SignSTE.apply(x), SignSTE.apply(self.weight) * scale, self.bias, self.stride, self.padding,
                        self.dilation)


class SequenceBinaryNet(nn.Module):
    """A 1-D BNN: float stem, binary Conv1d layers (strided, dilated) with BN + Hardtanh, float classifier."""

    def __init__(self, channels: int = 4, width: int = 32, classes: int = 5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(channels, width, 5, padding=2), nn.BatchNorm1d(width), nn.Hardtanh(),
            XnorConv1d(width, width, 3, padding=1, stride=2, bias=False), nn.BatchNorm1d(width), nn.Hardtanh(),
            XnorConv1d(width, 2 * width, 3, padding=2, dilation=2, bias=False), nn.BatchNorm1d(2 * width))
        self.classifier = nn.Linear(2 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean(-1))


class BinaryLinear(nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(SignSTE.apply(x), SignSTE.apply(self.weight), self.bias)


class TokenBinaryMLP(nn.Module):
    """Binary Linear layers applied to every token of a [batch, tokens, features] sequence (a BNN MLP block)."""

    def __init__(self, features: int = 8, width: int = 64, classes: int = 3) -> None:
        super().__init__()
        self.embed = nn.Linear(features, width)
        self.norm = nn.LayerNorm(width)
        self.up = BinaryLinear(width, width)
        self.down = BinaryLinear(width, width // 2)
        self.head = nn.Linear(width // 2, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.nn.functional.hardtanh(self.up(self.norm(self.embed(x))))
        return self.head(self.down(h)).mean(1)


class WhereSign(nn.Module):
    """sign with 0 -> +1, as torch.where writes it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))


def sign_zero_plus(x: torch.Tensor) -> torch.Tensor:
    """sign with 0 -> +1 as some PyTorch BNN libraries write it (exported as Sign, Equal, Where)."""
    s = torch.sign(x)
    return torch.where(s == 0, torch.ones_like(s), s)


class MinusOnePaddedConv(nn.Conv2d):
    """Activations and weights binarized by sign_zero_plus at run time; the binarized input padded with -1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = self.padding[0]
        return F.conv2d(F.pad(sign_zero_plus(x), (pad, pad, pad, pad), value=-1.0), sign_zero_plus(self.weight),
                        None, self.stride)


class MinusOnePaddedNet(nn.Module):
    """A float stem, two MinusOnePaddedConv blocks (the first with a residual) and a float classifier."""

    def __init__(self, width: int = 32, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1)
        self.convs = nn.ModuleList([MinusOnePaddedConv(width, width, 3, padding=1),
                                    MinusOnePaddedConv(width, 2 * width, 3, stride=2, padding=1)])
        self.norms = nn.ModuleList([nn.BatchNorm2d(width), nn.BatchNorm2d(width), nn.BatchNorm2d(2 * width)])
        self.classifier = nn.Linear(2 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norms[0](self.stem(x))
        x = self.norms[1](self.convs[0](x)) + x
        x = self.norms[2](self.convs[1](x))
        return self.classifier(x.mean((2, 3)))


class DetachSign(nn.Module):
    """The detach trick: forward value sign(x), gradient of clamp(x, -1, 1)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        clipped = torch.clamp(x, -1.0, 1.0)
        return clipped + (torch.sign(x) - clipped).detach()


class VggBinaryNet(nn.Module):
    """BinaryNet (Courbariaux et al.) VGG for 32x32 images: float first conv and classifier, binary middle,
    conv -> max-pool -> BN -> hardtanh, XNOR-scaled binary convs, binary dense layers with BatchNorm1d."""

    def __init__(self, width: int = 32, classes: int = 10):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.Hardtanh(),
            XnorConv2d(w, w, 3, padding=1, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(w), nn.Hardtanh(),
            XnorConv2d(w, 2 * w, 3, padding=1, bias=False), nn.BatchNorm2d(2 * w), nn.Hardtanh(),
            XnorConv2d(2 * w, 2 * w, 3, padding=1, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(2 * w),
            nn.Hardtanh(),
            XnorConv2d(2 * w, 4 * w, 3, padding=1, bias=False), nn.BatchNorm2d(4 * w), nn.Hardtanh(),
            XnorConv2d(4 * w, 4 * w, 3, padding=1, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(4 * w),
            nn.Hardtanh(),
        )
        self.classifier = nn.Sequential(
            BinaryLinear(4 * w * 16, 256, bias=False), nn.BatchNorm1d(256), nn.Hardtanh(),
            BinaryLinear(256, 256, bias=False), nn.BatchNorm1d(256), nn.Hardtanh(),
            nn.Linear(256, classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.classifier(x.view(x.size(0), -1))


class BiRealActivation(nn.Module):
    """Bi-Real Net's approximate sign: forward value sign(x), gradient of a piecewise polynomial."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out_forward = torch.sign(x)
        mask1 = x < -1
        mask2 = x < 0
        mask3 = x < 1
        out1 = (-1) * mask1.type(torch.float32) + (x * x + 2 * x) * (1 - mask1.type(torch.float32))
        out2 = out1 * mask2.type(torch.float32) + (-x * x + 2 * x) * (1 - mask2.type(torch.float32))
        out3 = out2 * mask3.type(torch.float32) + 1 * (1 - mask3.type(torch.float32))
        return out_forward.detach() - out3.detach() + out3


class LearnableBias(nn.Module):
    """ReActNet's RSign shift before the sign."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bias.expand_as(x)


class HardBinaryConv(nn.Module):
    """Bi-Real Net's binary conv: weights stored flat, scaled sign with the clipped-weight STE."""

    def __init__(self, in_chn: int, out_chn: int, stride: int = 1):
        super().__init__()
        self.stride = stride
        self.shape = (out_chn, in_chn, 3, 3)
        self.weights = nn.Parameter(torch.rand((out_chn * in_chn * 9, 1)) * 0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        real_weights = self.weights.view(self.shape)
        scaling_factor = torch.mean(torch.mean(torch.mean(abs(real_weights), dim=3, keepdim=True), dim=2,
                                               keepdim=True), dim=1, keepdim=True).detach()
        binary_weights_no_grad = scaling_factor * torch.sign(real_weights)
        cliped_weights = torch.clamp(real_weights, -1.0, 1.0)
        binary_weights = binary_weights_no_grad.detach() - cliped_weights.detach() + cliped_weights
        return F.conv2d(x, binary_weights, stride=self.stride, padding=1)


class BiRealBlock(nn.Module):
    """One binary conv with a residual around it; the shortcut (avg-pool, 1x1 conv, BN) stays float."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.move = LearnableBias(inplanes)
        self.binary_activation = BiRealActivation()
        self.binary_conv = HardBinaryConv(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.AvgPool2d(kernel_size=2, stride=stride),
                                            nn.Conv2d(inplanes, planes, 1, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.bn1(self.binary_conv(self.binary_activation(self.move(x))))
        return out + residual


class BiRealNet18(nn.Module):
    """Bi-Real Net 18: float 7x7 stem and classifier, 16 binary 3x3 convs each with its own residual."""

    def __init__(self, width: int = 64, classes: int = 100):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width),
                                  nn.MaxPool2d(3, 2, 1))
        blocks, inplanes = [], width
        for stage, planes in enumerate((width, 2 * width, 4 * width, 8 * width)):
            for i in range(4):
                blocks.append(BiRealBlock(inplanes, planes, 2 if stage > 0 and i == 0 else 1))
                inplanes = planes
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(inplanes, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def trained_looking(model: nn.Module, seed: int) -> nn.Module:
    """Trained-looking BN statistics and affine parameters (fresh ones are the identity), negative gammas
    included, ReActNet shifts, and Bi-Real weights of both signs (its init, rand * 0.001, is all positive); in
    eval mode. Every parameter is drawn again from `seed`, so the model does not depend on the global random state
    that earlier tests left when it was built."""
    torch.manual_seed(seed)
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            module.reset_parameters()
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, HardBinaryConv):  # torch.randn does return exact zeros (2 in 10^7)
            weights = torch.randn(module.weights.shape, generator=generator) * 0.01
            module.weights.data.copy_(torch.where(weights == 0, 0.01, weights))
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.5)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.randn(n, generator=generator))
            module.bias.data.copy_(torch.randn(n, generator=generator) * 0.5)
        if isinstance(module, LearnableBias):
            module.bias.data.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1)
    return model.eval()


def binarize(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.sign()


class DataOverwriteConv2d(nn.Conv2d):
    """BinaryNet.pytorch's BinarizeConv2d: binarizes through `.data`, which no exporter can see."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if input.size(1) != 3:
            input.data = binarize(input.data)
        if not hasattr(self.weight, "org"):
            self.weight.org = self.weight.data.clone()
        self.weight.data = binarize(self.weight.org)
        return F.conv2d(input, self.weight, None, self.stride, self.padding)


class DataOverwriteNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.Hardtanh(),
                                  DataOverwriteConv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.Hardtanh(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def vgg_with_example_input(width: int = 8, seed: int = 13) -> tuple[nn.Module, torch.Tensor]:
    """A factory as `bnn2onnx convert file.py:function` calls it: the module and an example input."""
    return trained_looking(VggBinaryNet(width=width), seed=seed), torch.randn(2, 3, 32, 32)
