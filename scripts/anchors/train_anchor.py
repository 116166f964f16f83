"""Training-throughput anchors for issue 13, to run on the GPU machine in the same call as mamba-ts's
`bench/train-gpu.bench.js` (a mamba-ts figure is reported as a ratio to these).

usage: python3 train_anchor.py MAMBA_SSM_SRC [which...]
  MAMBA_SSM_SRC: a folder holding the `mamba_ssm` package's Python sources (a snapshot of state-spaces/mamba, not
  installed; its top-level __init__.py replaced by `__version__ = "snapshot"`), for the official Triton SSD with its
  Triton backward (`mamba_chunk_scan_combined`) and the gated RMSNorm (`rmsnorm_fn`).
  which: any of tiny256 tiny4096 mamba2 mamba (default: all)

Each line: one JSON object {name, shape, tokens_per_s, ms_per_step, peak_mib}: a full step (forward, softmax
cross-entropy, backward, AdamW) in float32 on random weights and random tokens, the median of timed steps after warm-up.
  tiny256 / tiny4096: HF transformers' MambaForCausalLM (torch path: the mamba_ssm CUDA extension is not installed),
                     2 layers, d_model 64, d_state 16, vocab 32 (the synthetic tasks' model), batch 8, L 256 / 4096
  mamba2:            the mamba2-130m shape (24 layers, d_model 768, 24 heads × 64, d_state 128, vocab 50,280),
                     batch 8, L 2048, official Triton SSD (chunk 256) + gated RMSNorm + torch matmuls/conv1d
  mamba:             HF MambaForCausalLM at the mamba-130m shape (torch path), batch 2, L 1024
"""
import sys, json, time, torch, torch.nn.functional as F
sys.path.insert(0, sys.argv[1])
which = sys.argv[2:] or ["tiny256", "tiny4096", "mamba2", "mamba"]
dev = "cuda"
torch.manual_seed(0)
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


def timed(name, shape, step, tokens, warm=2, reps=5):
    for _ in range(warm):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    t = ts[len(ts) // 2]
    print(json.dumps({"name": name, "shape": shape, "tokens_per_s": round(tokens / t, 1), "ms_per_step": round(t * 1e3, 2),
                      "peak_mib": round(torch.cuda.max_memory_allocated() / 2**20)}), flush=True)


def hf_step(model, V, b, L):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, V, (b, L), device=dev)
    def step():
        out = model(input_ids=ids, labels=ids, use_cache=False)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def hf_mamba(name, b, L, **cfg):
    import transformers as T
    model = T.MambaForCausalLM(T.MambaConfig(**cfg)).to(dev).train()
    timed(name, f"b{b} L{L}", hf_step(model, cfg["vocab_size"], b, L), b * L, warm=1, reps=3)
    del model
    torch.cuda.empty_cache()


for w in which:
    if w == "tiny256":
        hf_mamba("hf-torch mamba 2x64 (synthetic tasks)", 8, 256, vocab_size=32, hidden_size=64, num_hidden_layers=2, state_size=16, expand=2, conv_kernel=4)
    elif w == "tiny4096":
        hf_mamba("hf-torch mamba 2x64 (synthetic tasks)", 8, 4096, vocab_size=32, hidden_size=64, num_hidden_layers=2, state_size=16, expand=2, conv_kernel=4)
    elif w == "mamba":
        hf_mamba("hf-torch mamba-130m", 2, 1024, vocab_size=50280, hidden_size=768, num_hidden_layers=24, state_size=16, expand=2, conv_kernel=4)
    elif w == "mamba2":
        from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined
        from mamba_ssm.ops.triton.layernorm_gated import rmsnorm_fn
        V, H, NL, I, NH, P, G, N, K = 50280, 768, 24, 1536, 24, 64, 1, 128, 4
        CD = I + 2 * G * N
        b, L = 8, 2048
        prm = lambda *s, scale=0.02: torch.nn.Parameter(torch.randn(*s, device=dev) * scale)
        emb = prm(V, H)
        layers = [dict(norm=torch.nn.Parameter(torch.ones(H, device=dev)), inp=prm(2 * I + 2 * G * N + NH, H), conv=prm(CD, 1, K, scale=0.2), convb=prm(CD),
                       A_log=torch.nn.Parameter(torch.log(torch.rand(NH, device=dev) * 15 + 1)), D=torch.nn.Parameter(torch.ones(NH, device=dev)),
                       dtb=torch.nn.Parameter(torch.rand(NH, device=dev) - 4), gn=torch.nn.Parameter(torch.ones(I, device=dev)), out=prm(H, I)) for _ in range(NL)]
        normf = torch.nn.Parameter(torch.ones(H, device=dev))
        params = [emb, normf] + [p for l in layers for p in l.values()]
        rms = lambda x, w: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w
        def forward(ids):
            h = emb[ids]
            for l in layers:
                zxbcdt = rms(h, l["norm"]) @ l["inp"].T
                z, xBC, dt = torch.split(zxbcdt, [I, CD, NH], -1)
                xBC = F.silu(F.conv1d(xBC.transpose(1, 2), l["conv"], l["convb"], padding=K - 1, groups=CD)[..., :L].transpose(1, 2))
                x, B, C = torch.split(xBC, [I, G * N, G * N], -1)
                y = mamba_chunk_scan_combined(x.reshape(b, L, NH, P), dt, -torch.exp(l["A_log"]), B.reshape(b, L, G, N), C.reshape(b, L, G, N), 256, D=l["D"], dt_bias=l["dtb"], dt_softplus=True)
                y = rmsnorm_fn(y.reshape(b, L, I), l["gn"], None, z=z, eps=1e-5, group_size=I // G, norm_before_gate=False)
                h = h + y @ l["out"].T
            return rms(h, normf) @ emb.T
        opt = torch.optim.AdamW(params, lr=1e-4)
        ids = torch.randint(0, V, (b, L), device=dev)
        def step():
            logits = forward(ids)
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        timed("official Triton SSD + torch, mamba2-130m", f"b{b} L{L}", step, b * L)
        del params, layers, emb, opt
        torch.cuda.empty_cache()
