"""Official-kernel anchors at the Mamba papers' model shapes (issue 11, "larger shapes"), to run on the GPU
machine in the same call as `mamba-ts bench --backend webgpu --size S` / `dist/bench/webgpu-suite.js --sizes S`
(a mamba-ts figure is reported as a ratio to these).

usage: python3 official_shapes.py MAMBA_SSM_SRC [--sizes 130m,370m,790m,1.4b,2.8b] [--arch mamba,mamba2]
           [--dtypes fp32,bf16] [--prompt 2048] [--decode-steps 200] [--ref-scan]
           [--d-model D --n-layer L [--d-state N] [--headdim P] [--vocab V]]     (one custom shape instead of --sizes)

  MAMBA_SSM_SRC: a folder holding the `mamba_ssm` package's Python sources (a snapshot of state-spaces/mamba, not
  installed; its top-level __init__.py replaced by `__version__ = "snapshot"`, so that importing the Triton ops does
  not import the CUDA extension). Needs torch with CUDA, triton and einops.

The shapes are those of the state-spaces checkpoints (and of mamba-ts's `--size` presets, src/models/random.ts):
  size   d_model  n_layer      Mamba-1: d_state 16, expand 2, d_conv 4, dt_rank ceil(d_model/16), vocab 50280
  130m     768      24         Mamba-2: d_state 128, headdim 64, ngroups 1, expand 2, d_conv 4, chunk 256,
  370m    1024      48                  vocab 50288
  790m    1536      48
  1.4b    2048      48
  2.8b    2560      64
Weights are random (N(0, 0.02²) matrices, the usual A/D/dt_bias ranges); the embedding is tied to the LM head.

What is timed, batch 1, for each dtype (fp32 and bf16 weights and activations; SSM states kept in fp32):
  prefill of --prompt tokens (one forward, logits of every position as the official model returns them):
    Mamba-2: torch matmuls for the projections, torch conv1d, the official Triton SSD
             (`mamba_chunk_scan_combined`) and gated RMSNorm (`rmsnorm_fn`);
    Mamba-1: the official `selective_scan_fn` — a CUDA extension (`selective_scan_cuda`); without it (a source
             snapshot has none) the line says so. --ref-scan times `selective_scan_ref` (pure torch, a Python loop
             over positions) instead, labelled as such: it is not the official kernel's speed.
  decode, one token per step with its argmax fed back on the device: torch matmuls, a rolled conv window, the
    official Triton `selective_state_update`; eager, and captured in a CUDA graph replayed in a loop (how
    mamba_ssm's generate(cg=True) runs).

Output: one line per measurement for people, and one JSON object per (arch, size, dtype) after "JSON ".
"""
import argparse
import json
import math
import sys

import torch
import torch.nn.functional as F

SIZES = {"130m": (768, 24), "370m": (1024, 48), "790m": (1536, 48), "1.4b": (2048, 48), "2.8b": (2560, 64)}

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("src", help="folder holding the mamba_ssm sources")
ap.add_argument("--sizes", default="130m,370m,790m,1.4b,2.8b")
ap.add_argument("--arch", default="mamba,mamba2")
ap.add_argument("--dtypes", default="fp32,bf16")
ap.add_argument("--prompt", type=int, default=2048)
ap.add_argument("--decode-steps", type=int, default=200, help="timed CUDA-graph replays (eager: a quarter)")
ap.add_argument("--ref-scan", action="store_true", help="Mamba-1 prefill with selective_scan_ref when the CUDA extension is missing")
ap.add_argument("--d-model", type=int)
ap.add_argument("--n-layer", type=int)
ap.add_argument("--d-state", type=int, help="default 16 (Mamba-1) / 128 (Mamba-2)")
ap.add_argument("--headdim", type=int, default=64)
ap.add_argument("--vocab", type=int, help="default 50280 (Mamba-1) / 50288 (Mamba-2)")
args = ap.parse_args()

sys.path.insert(0, args.src)
try:
    from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined
    from mamba_ssm.ops.triton.selective_state_update import selective_state_update
    from mamba_ssm.ops.triton.layernorm_gated import rmsnorm_fn
except ImportError as e:
    sys.exit(f"official_shapes.py: cannot import the Triton ops from {args.src}/mamba_ssm ({e}); see the usage at the top")
try:
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn, selective_scan_ref
    import mamba_ssm.ops.selective_scan_interface as ssi
    HAVE_SCAN_CUDA = getattr(ssi, "selective_scan_cuda", None) is not None
except ImportError as e:  # einops or the module missing
    selective_scan_fn = selective_scan_ref = None
    HAVE_SCAN_CUDA = False
    print(f"note: mamba_ssm.ops.selective_scan_interface not importable ({e}): no Mamba-1 prefill", flush=True)

if not torch.cuda.is_available():
    sys.exit("official_shapes.py: needs a CUDA GPU")
DEV = "cuda"
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32, as the WebGPU side computes
torch.backends.cudnn.allow_tf32 = False
K = 4  # d_conv


def gpu_ms(fn, reps):
    """mean milliseconds of fn() over reps calls after one warm-up, by CUDA events"""
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps


def rms(x, w, eps=1e-5):
    return (x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * w


def graphed(step):
    """step captured in a CUDA graph (after two warm-up calls on a side stream, as torch requires)"""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        step()
        step()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        step()
    return g


def randn(*shape, dtype):
    return (torch.randn(*shape, device=DEV) * 0.02).to(dtype)


class Model:
    """random weights of a Mamba stack: tied embedding / LM head, final RMSNorm, `n_layer` blocks of self.block(d)"""
    def __init__(self, d, n_layer, vocab, dtype):
        self.dtype = dtype
        self.emb = randn(vocab, d, dtype=dtype)
        self.norm_f = torch.ones(d, device=DEV, dtype=dtype)
        self.layers = [dict(norm=torch.ones(d, device=DEV, dtype=dtype), **self.block(d)) for _ in range(n_layer)]

    def logits(self, h):
        return rms(h, self.norm_f) @ self.emb.T

    def decoder(self):
        """a one-token step on fixed buffers (token id in, next token id out), for eager calls and graph capture"""
        caches = [self.cache() for _ in self.layers]
        tok = torch.zeros(1, dtype=torch.long, device=DEV)

        def step():
            h = self.emb[tok]
            for l, c in zip(self.layers, caches):
                h = h + self.mix_step(l, c, rms(h, l["norm"]))
            tok.copy_(self.logits(h).argmax(-1))
        return step


class Mamba2(Model):
    def __init__(self, d, n_layer, d_state, headdim, vocab, dtype):
        self.I = 2 * d
        self.NH = self.I // headdim
        self.P, self.N, self.G = headdim, d_state, 1
        self.CD = self.I + 2 * self.G * self.N
        super().__init__(d, n_layer, vocab, dtype)

    def block(self, d):
        dt = self.dtype
        return dict(in_proj=randn(2 * self.I + 2 * self.G * self.N + self.NH, d, dtype=dt),
                    conv_w=randn(self.CD, 1, K, dtype=dt), conv_b=randn(self.CD, dtype=dt),
                    A=-torch.empty(self.NH, device=DEV).uniform_(1, 16), D=torch.ones(self.NH, device=DEV),
                    dt_bias=torch.empty(self.NH, device=DEV).uniform_(-4, -2),
                    gnorm=torch.ones(self.I, device=DEV, dtype=dt), out_proj=randn(d, self.I, dtype=dt))

    def prefill(self, ids):
        h = self.emb[ids]
        b, L, _ = h.shape
        for l in self.layers:
            z, xBC, dt = torch.split(rms(h, l["norm"]) @ l["in_proj"].T, [self.I, self.CD, self.NH], -1)
            xBC = F.silu(F.conv1d(xBC.transpose(1, 2), l["conv_w"], l["conv_b"], padding=K - 1, groups=self.CD)[..., :L].transpose(1, 2))
            x, B, C = torch.split(xBC, [self.I, self.G * self.N, self.G * self.N], -1)
            y = mamba_chunk_scan_combined(x.reshape(b, L, self.NH, self.P), dt, l["A"], B.reshape(b, L, self.G, self.N), C.reshape(b, L, self.G, self.N),
                                          256, D=l["D"], dt_bias=l["dt_bias"], dt_softplus=True)
            y = rmsnorm_fn(y.reshape(b, L, self.I), l["gnorm"], None, z=z, eps=1e-5, group_size=self.I // self.G, norm_before_gate=False)
            h = h + y @ l["out_proj"].T
        return self.logits(h)

    def cache(self):
        NH, P, N = self.NH, self.P, self.N
        return dict(ssm=torch.zeros(1, NH, P, N, device=DEV), conv=torch.zeros(1, self.CD, K, device=DEV, dtype=self.dtype))

    def mix_step(self, l, c, hn):
        NH, P, N, G = self.NH, self.P, self.N, self.G
        z, xBC, dt = torch.split(hn @ l["in_proj"].T, [self.I, self.CD, NH], -1)
        c["conv"].copy_(torch.roll(c["conv"], -1, -1))
        c["conv"][:, :, -1] = xBC
        xBC = F.silu((c["conv"] * l["conv_w"][:, 0]).sum(-1) + l["conv_b"])
        x, B, C = torch.split(xBC, [self.I, G * N, G * N], -1)
        # selective_state_update's per-channel form: A, D, dt_bias broadcast over headdim (stride 0), as mamba_ssm's step
        y = selective_state_update(c["ssm"], x.reshape(1, NH, P), dt[:, :, None].expand(1, NH, P), l["A"][:, None, None].expand(NH, P, N),
                                   B.reshape(1, G, N), C.reshape(1, G, N), D=l["D"][:, None].expand(NH, P),
                                   dt_bias=l["dt_bias"][:, None].expand(NH, P), dt_softplus=True)
        y = rmsnorm_fn(y.reshape(1, self.I), l["gnorm"], None, z=z, eps=1e-5, group_size=self.I // G, norm_before_gate=False)
        return y @ l["out_proj"].T


class Mamba1(Model):
    def __init__(self, d, n_layer, d_state, vocab, dtype):
        self.I, self.N, self.R = 2 * d, d_state, math.ceil(d / 16)
        super().__init__(d, n_layer, vocab, dtype)

    def block(self, d):
        dt = self.dtype
        return dict(in_proj=randn(2 * self.I, d, dtype=dt), conv_w=randn(self.I, 1, K, dtype=dt), conv_b=randn(self.I, dtype=dt),
                    x_proj=randn(self.R + 2 * self.N, self.I, dtype=dt), dt_w=randn(self.I, self.R, dtype=dt),
                    dt_b=torch.empty(self.I, device=DEV).uniform_(-4, -2),
                    A=-torch.arange(1, self.N + 1, device=DEV, dtype=torch.float32).repeat(self.I, 1), D=torch.ones(self.I, device=DEV),
                    out_proj=randn(d, self.I, dtype=dt))

    def prefill(self, ids, scan):
        h = self.emb[ids]
        b, L, _ = h.shape
        for l in self.layers:
            x, z = (rms(h, l["norm"]) @ l["in_proj"].T).chunk(2, -1)
            x = F.silu(F.conv1d(x.transpose(1, 2), l["conv_w"], l["conv_b"], padding=K - 1, groups=self.I)[..., :L])  # (b, I, L)
            dt, B, C = torch.split(x.transpose(1, 2) @ l["x_proj"].T, [self.R, self.N, self.N], -1)
            dt = (dt @ l["dt_w"].T).transpose(1, 2)  # (b, I, L)
            y = scan(x.contiguous(), dt.contiguous(), l["A"], B.transpose(1, 2).contiguous(), C.transpose(1, 2).contiguous(),
                     D=l["D"], z=z.transpose(1, 2).contiguous(), delta_bias=l["dt_b"], delta_softplus=True)
            h = h + y.transpose(1, 2) @ l["out_proj"].T
        return self.logits(h)

    def cache(self):
        return dict(ssm=torch.zeros(1, self.I, self.N, device=DEV), conv=torch.zeros(1, self.I, K, device=DEV, dtype=self.dtype))

    def mix_step(self, l, c, hn):
        x, z = (hn @ l["in_proj"].T).chunk(2, -1)
        c["conv"].copy_(torch.roll(c["conv"], -1, -1))
        c["conv"][:, :, -1] = x
        x = F.silu((c["conv"] * l["conv_w"][:, 0]).sum(-1) + l["conv_b"])
        dt, B, C = torch.split(x @ l["x_proj"].T, [self.R, self.N, self.N], -1)
        y = selective_state_update(c["ssm"], x, dt @ l["dt_w"].T, l["A"], B, C, D=l["D"], z=z, dt_bias=l["dt_b"], dt_softplus=True)
        return y @ l["out_proj"].T


def shapes():
    if args.d_model or args.n_layer:
        if not (args.d_model and args.n_layer):
            sys.exit("official_shapes.py: --d-model and --n-layer go together")
        return [(f"d{args.d_model}x{args.n_layer}", args.d_model, args.n_layer)]
    out = []
    for s in args.sizes.split(","):
        if s not in SIZES:
            sys.exit(f"official_shapes.py: unknown size {s!r} (known: {', '.join(SIZES)})")
        out.append((s, *SIZES[s]))
    return out


def run(arch, size, d, n_layer, dname):
    dtype = DTYPES[dname]
    vocab = args.vocab or (50288 if arch == "mamba2" else 50280)
    d_state = args.d_state or (128 if arch == "mamba2" else 16)
    res = dict(arch=arch, size=size, dtype=dname, d_model=d, n_layer=n_layer, d_state=d_state, vocab=vocab, prompt=args.prompt, batch=1)
    name = f"{arch}-{size} {dname}"
    model = Mamba2(d, n_layer, d_state, args.headdim, vocab, dtype) if arch == "mamba2" else Mamba1(d, n_layer, d_state, vocab, dtype)
    res["weight_gib"] = sum(t.numel() * t.element_size() for l in model.layers for t in l.values()) / 2**30 + model.emb.numel() * model.emb.element_size() / 2**30
    ids = torch.randint(0, vocab, (1, args.prompt), device=DEV)
    with torch.no_grad():
        if arch == "mamba2":
            t = gpu_ms(lambda: model.prefill(ids), 5)
            res.update(prefill_tok_s=args.prompt / t * 1e3, prefill_ms=t, prefill_impl="official Triton SSD + torch matmuls")
        elif HAVE_SCAN_CUDA:
            t = gpu_ms(lambda: model.prefill(ids, selective_scan_fn), 5)
            res.update(prefill_tok_s=args.prompt / t * 1e3, prefill_ms=t, prefill_impl="official selective_scan_fn (CUDA extension) + torch matmuls")
        elif args.ref_scan and selective_scan_ref is not None:
            t = gpu_ms(lambda: model.prefill(ids, selective_scan_ref), 1)
            res.update(prefill_tok_s=args.prompt / t * 1e3, prefill_ms=t, prefill_impl="selective_scan_ref (pure torch loop; NOT the official kernel)")
        else:
            res.update(prefill_tok_s=None, prefill_impl="not measured: selective_scan_fn needs the selective_scan_cuda extension, which a source snapshot lacks (--ref-scan: the torch reference instead)")
        if res["prefill_tok_s"] is not None:
            print(f"{name} prefill {args.prompt}: {res['prefill_tok_s']:,.0f} tok/s ({res['prefill_ms']:.2f} ms; {res['prefill_impl']})", flush=True)
        else:
            print(f"{name} prefill: {res['prefill_impl']}", flush=True)
        step = model.decoder()
        te = gpu_ms(step, max(10, args.decode_steps // 4))
        g = graphed(step)
        tg = gpu_ms(g.replay, args.decode_steps)
        res.update(decode_eager_tok_s=1e3 / te, decode_graph_tok_s=1e3 / tg, decode_impl="official Triton selective_state_update + torch matmuls")
        print(f"{name} decode (selective_state_update): eager {res['decode_eager_tok_s']:,.0f} tok/s, CUDA graph {res['decode_graph_tok_s']:,.0f} tok/s", flush=True)
    res["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    del model, step, g
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    print("JSON " + json.dumps(res), flush=True)


print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}; Mamba-1 selective_scan_cuda: {'yes' if HAVE_SCAN_CUDA else 'no'}", flush=True)
torch.manual_seed(0)
for size, d, n_layer in shapes():
    for arch in args.arch.split(","):
        if arch not in ("mamba", "mamba2"):
            sys.exit(f"official_shapes.py: unknown arch {arch!r} (mamba, mamba2)")
        for dname in args.dtypes.split(","):
            if dname not in DTYPES:
                sys.exit(f"official_shapes.py: unknown dtype {dname!r} (fp32, bf16)")
            try:
                run(arch, size, d, n_layer, dname)
            except torch.cuda.OutOfMemoryError as e:
                torch.cuda.empty_cache()
                print(f"{arch}-{size} {dname}: out of memory ({str(e).splitlines()[0]})", flush=True)
                print("JSON " + json.dumps(dict(arch=arch, size=size, dtype=dname, error="out of memory")), flush=True)
