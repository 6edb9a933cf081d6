"""The README's PyTorch quick start: one-cycle LR with cyclical momentum on a tiny regression."""

import torch

import cyclr
import cyclr.torch

torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
sched = cyclr.torch.Scheduler(opt, cyclr.one_cycle(max_lr=0.05, total_steps=200), momentum=(0.85, 0.95))
x, y = torch.randn(256, 8), torch.randn(256, 1)
for _ in range(200):
    loss = torch.nn.functional.mse_loss(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()  # once per optimizer update
print(f"final loss {loss.item():.4f}, lr {sched.get_last_lr()[0]:.2e}")
