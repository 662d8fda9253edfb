#!/usr/bin/env python3
"""Golden values for Tests/ITuneTensorTests/OptimTests.swift: torch.optim.AdamW for three steps
on fixed params and gradients, and clip_grad_norm_ on fixed gradients. Prints Swift literals.

    python3 scripts/make_adamw_golden.py
"""
import torch

torch.set_printoptions(precision=10)
p = torch.tensor([0.5, -1.25, 2.0, 0.0, 3.5], dtype=torch.float32, requires_grad=True)
grads = [
    torch.tensor([0.1, -0.2, 0.3, 0.0, -1.5]),
    torch.tensor([-0.05, 0.4, 0.3, 1e-4, 2.0]),
    torch.tensor([0.2, 0.2, -0.6, 0.0, 0.5]),
]
opt = torch.optim.AdamW([p], lr=0.01, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, foreach=False)
for g in grads:
    p.grad = g.clone()
    opt.step()
print("adamw after 3 steps:", "[" + ", ".join(f"{x:.9g}" for x in p.detach().tolist()) + "]")

a = torch.zeros(3, requires_grad=True)
b = torch.zeros(2, 2, requires_grad=True)
a.grad = torch.tensor([3.0, 0.0, -4.0])
b.grad = torch.tensor([[1.0, 2.0], [-2.0, 10.0]])
total = torch.nn.utils.clip_grad_norm_([a, b], max_norm=5.0)
print("clip total:", f"{total.item():.9g}")
print("clip a:", [f"{x:.9g}" for x in a.grad.tolist()], "b:", [f"{x:.9g}" for x in b.grad.flatten().tolist()])
