"""
PyTorch CPU reference for the training throughput of issue 12: a Mamba-1 LM written as Hugging Face transformers'
`MambaMixer.slow_forward` (the path transformers takes on CPU, without the CUDA kernels) — in_proj, depthwise causal
conv1d + silu, x_proj, dt_proj + softplus, the sequential selective scan in PyTorch ops, D skip, silu(z) gate,
out_proj; pre-norm residual blocks (RMSNorm), final norm, tied lm_head — trained with cross-entropy and AdamW in
float32, at mamba-ts's bench shape (d_model 256 × 4 layers, d_inner 512, N 16, dt_rank 16, conv 4, vocab 256,
batch 8 × 64 tokens by default).

  python3 bench/pytorch_train.py [--threads 2] [--steps 10] [--batch 8] [--seq 64] [--hidden 256] [--layers 4]

PyTorch on the project's Debian machines: `apt-get install python3-torch` (1.13.1), run with /usr/bin/python3.

Prints tokens/s of a full step (forward + backward + clip + AdamW) and of forward + backward alone (median over
steps after one warm-up), with the torch version and thread count.
"""
import argparse
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        var = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(var + self.eps))


class MambaMixer(nn.Module):
    def __init__(self, d_model, d_inner, d_state, d_conv, dt_rank):
        super().__init__()
        self.d_inner, self.d_state, self.dt_rank = d_inner, d_state, dt_rank
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=False)
        self.conv1d = nn.Conv1d(d_inner, d_inner, d_conv, groups=d_inner, padding=d_conv - 1, bias=True)
        self.x_proj = nn.Linear(d_inner, dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(dt_rank, d_inner, bias=True)
        A = torch.arange(1, d_state + 1, dtype=torch.float32)[None, :].expand(d_inner, -1).contiguous()
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(d_inner))
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)

    def forward(self, x):  # transformers MambaMixer.slow_forward, without cache
        b, L, _ = x.shape
        projected = self.in_proj(x).transpose(1, 2)
        h, gate = projected.chunk(2, dim=1)
        h = F.silu(self.conv1d(h)[..., :L])
        ssm_params = self.x_proj(h.transpose(1, 2))
        time_step, B, C = torch.split(ssm_params, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.softplus(self.dt_proj(time_step)).transpose(1, 2)  # [b, D, L]
        A = -torch.exp(self.A_log.float())
        dA = torch.exp(A[None, :, None, :] * dt[:, :, :, None])  # [b, D, L, N]
        dBu = dt[:, :, :, None] * B[:, None, :, :].float() * h[:, :, :, None].float()
        state = torch.zeros(b, self.d_inner, self.d_state, dtype=dA.dtype)
        ys = []
        for i in range(L):
            state = dA[:, :, i, :] * state + dBu[:, :, i, :]
            ys.append(torch.matmul(state, C[:, i, :].unsqueeze(-1))[:, :, 0])
        y = torch.stack(ys, dim=-1)
        y = y + h * self.D[None, :, None]
        y = y * F.silu(gate)
        return self.out_proj(y.transpose(1, 2))


class MambaLM(nn.Module):
    def __init__(self, vocab, d_model, n_layer, d_state=16, d_conv=4, expand=2):
        super().__init__()
        d_inner = expand * d_model
        dt_rank = math.ceil(d_model / 16)
        self.embed = nn.Embedding(vocab, d_model)
        self.norms = nn.ModuleList([RMSNorm(d_model) for _ in range(n_layer)])
        self.mixers = nn.ModuleList([MambaMixer(d_model, d_inner, d_state, d_conv, dt_rank) for _ in range(n_layer)])
        self.norm_f = RMSNorm(d_model)

    def forward(self, ids):
        x = self.embed(ids)
        for norm, mixer in zip(self.norms, self.mixers):
            x = x + mixer(norm(x))
        return F.linear(self.norm_f(x), self.embed.weight)  # tied lm_head


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--threads', type=int, default=torch.get_num_threads())
    p.add_argument('--steps', type=int, default=10)
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--seq', type=int, default=64)
    p.add_argument('--hidden', type=int, default=256)
    p.add_argument('--layers', type=int, default=4)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    vocab = 256
    model = MambaLM(vocab, a.hidden, a.layers)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    g = torch.Generator().manual_seed(1)
    full, fb = [], []
    for step in range(a.steps + 1):
        ids = torch.randint(0, vocab, (a.batch, a.seq + 1), generator=g)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits = model(ids[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, vocab), ids[:, 1:].reshape(-1))
        loss.backward()
        t1 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        t2 = time.perf_counter()
        if step > 0:
            full.append(t2 - t0)
            fb.append(t1 - t0)
    tok = a.batch * a.seq
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads; d_model {a.hidden} x {a.layers} layers, batch {a.batch} x {a.seq}, '
          f'{a.steps} steps: full step {tok / statistics.median(full):.0f} tok/s ({1000 * statistics.median(full):.1f} ms, best {tok / min(full):.0f} tok/s); '
          f'forward+backward {tok / statistics.median(fb):.0f} tok/s ({1000 * statistics.median(fb):.1f} ms)')


if __name__ == '__main__':
    main()
