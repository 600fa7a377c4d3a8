"""A straightforward PyTorch CPU implementation of the same residual UNet, for speed comparison.

Same blocks as `tem_rf.models.residual_unet`: ``Conv3x3-BN-ReLU-Conv3x3-BN`` plus a ``Conv1x1``
projection, add, ReLU; 4, 8, ... filters; MaxPool(k); nearest upsampling; concatenation;
``Conv1x1(2)`` head; cross-entropy (softmax); Adam lr 1e-4. BN eps 1e-3 and momentum 0.01 match
Keras' defaults (no effect on speed). Needs the optional ``bench`` extra (``torch==2.13.0``).
"""

from __future__ import annotations

import os
import time
from typing import Any


def _modules():
    import torch
    from torch import nn

    class ResidualBlock(nn.Module):
        def __init__(self, cin: int, filters: int) -> None:
            super().__init__()
            self.proj = nn.Conv2d(cin, filters, 1)
            self.conv1 = nn.Conv2d(cin, filters, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(filters, eps=1e-3, momentum=0.01)
            self.conv2 = nn.Conv2d(filters, filters, 3, padding=1)
            self.bn2 = nn.BatchNorm2d(filters, eps=1e-3, momentum=0.01)

        def forward(self, x):
            y = torch.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            return torch.relu(y + self.proj(x))

    class ResidualUNet(nn.Module):
        def __init__(self, num_blocks: int, pool: int = 2, base: int = 4, classes: int = 2) -> None:
            super().__init__()
            self.pool = pool
            filters = [base * 2**i for i in range(num_blocks + 1)]
            cin, self.encoder = 1, nn.ModuleList()
            for f in filters[:-1]:
                self.encoder.append(ResidualBlock(cin, f))
                cin = f
            self.bottleneck = ResidualBlock(cin, filters[-1])
            self.decoder = nn.ModuleList()
            cin = filters[-1]
            for f in reversed(filters[:-1]):
                self.decoder.append(ResidualBlock(cin + f, f))
                cin = f
            self.head = nn.Conv2d(cin, classes, 1)

        def forward(self, x):
            skips = []
            for block in self.encoder:
                x = block(x)
                skips.append(x)
                x = nn.functional.max_pool2d(x, self.pool)
            x = self.bottleneck(x)
            for block, skip in zip(self.decoder, reversed(skips)):
                x = nn.functional.interpolate(x, scale_factor=self.pool, mode="nearest")
                x = block(torch.cat([x, skip], dim=1))
            return self.head(x)  # logits; softmax is inside the cross-entropy

    return ResidualUNet


def count_parameters(model: Any) -> int:
    """Trainable scalars (BN running statistics are buffers, not parameters)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def make_step(num_blocks: int, batch: int, size: int, channels_last: bool = False, seed: int = 0):
    """Returns ``(step, params)``: ``step()`` runs one Adam training step on a fixed random batch."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(seed)
    model = _modules()(num_blocks)
    params = count_parameters(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    images = torch.randn(batch, 1, size, size)
    labels = (torch.rand(batch, size, size) > 0.7).long()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    model.train()

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(images), labels)
        loss.backward()
        optimizer.step()
        return loss.item()

    step()  # first-call allocations outside the timing
    return step, params


if __name__ == "__main__":
    step, params = make_step(2, 8, 512)
    print(f"PyTorch residual UNet N=2: {params} trainable parameters")
    start = time.perf_counter()
    for _ in range(3):
        step()
    print(f"{3 * 8 / (time.perf_counter() - start):.2f} patches/s (512x512, batch 8)")
