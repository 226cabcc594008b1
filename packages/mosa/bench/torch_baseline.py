"""PyTorch baseline for the MoSA bench: the same layer as @attnkit/mosa written plainly
(top-k, gather, scaled_dot_product_attention, scatter-add), in each case's config dtype (float32
with TF32 off unless h100.mjs ran with --dtype), timed forward+backward on
the same GPU with CUDA events. Reads cases.json and torch-check.safetensors written by h100.mjs
from --out, writes torch.json there.

Tensor names and layouts are @attnkit/mosa's (README): linear weights [out, in] as nn.Linear.
"""
import argparse
import json
import os
import struct

import torch
import torch.nn.functional as F


def read_safetensors(path, device):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    dtypes = {"F32": torch.float32, "I32": torch.int32, "F64": torch.float64}
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        t = torch.frombuffer(bytearray(data[base + b : base + end]), dtype=dtypes[e["dtype"]])
        out[name] = t.reshape(e["shape"]).to(device)
    return out, meta


def rope(x, pos, base):
    # x [..., T, D] rotate-half; pos broadcastable to [..., T]; angles in float64 like attnkit.
    D = x.shape[-1]
    half = D // 2
    inv = base ** (-2.0 * torch.arange(half, device=x.device, dtype=torch.float64) / D)
    theta = pos.to(torch.float64)[..., None] * inv
    c, s = theta.cos().to(x.dtype), theta.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1)


def mosa_layer(p, x, cfg):
    B, T, C = x.shape
    D = cfg["headDim"]
    base = 0.0 if cfg.get("rope") is False else 10000.0
    y = torch.zeros_like(x)
    Hd = cfg["denseHeads"]
    if Hd > 0:
        def heads(w):
            return (x @ w.t()).view(B, T, Hd, D).transpose(1, 2)
        q, k, v = heads(p["dense.q.weight"]), heads(p["dense.k.weight"]), heads(p["dense.v.weight"])
        if base:
            pos = torch.arange(T, device=x.device)
            q, k = rope(q, pos, base), rope(k, pos, base)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y + o.transpose(1, 2).reshape(B, T, Hd * D) @ p["dense.o.weight"].t()
    Hs = cfg["sparseHeads"]
    if Hs > 0:
        kk = min(T, max(1, int(T // cfg["sparsity"])))
        logits = (x @ p["router.weight"].t()).transpose(1, 2)  # [B, Hs, T]
        idx = logits.topk(kk, dim=-1).indices.sort(dim=-1).values  # [B, Hs, k] ascending
        r = torch.sigmoid(logits.gather(-1, idx))
        rows = idx.reshape(B, Hs * kk, 1).expand(-1, -1, C)
        xs = x.gather(1, rows).view(B, Hs, kk, C)

        def proj(w):
            return torch.einsum("bhkc,hdc->bhkd", xs, w.view(Hs, D, C))
        q, k, v = proj(p["sparse.q.weight"]), proj(p["sparse.k.weight"]), proj(p["sparse.v.weight"])
        if base:
            q, k = rope(q, idx, base), rope(k, idx, base)
        # positions ascend with the slot, so causal by position is causal by slot
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True) * r[..., None]
        wo = p["sparse.o.weight"].view(C, Hs, D).permute(1, 0, 2)  # [Hs, C, D]
        yh = torch.einsum("bhkd,hcd->bhkc", o, wo).reshape(B, Hs * kk, C)
        y = y + torch.zeros_like(x).scatter_add(1, rows, yh)
    return y


def init_params(cfg, device, gen):
    C, D = cfg["dModel"], cfg["headDim"]
    p = {}

    def lin(name, out_f, in_f):
        bound = 1 / in_f ** 0.5
        p[name] = ((torch.rand(out_f, in_f, generator=gen, device=device) * 2 - 1) * bound).requires_grad_()

    for group, H in (("dense", cfg["denseHeads"]), ("sparse", cfg["sparseHeads"])):
        if H == 0:
            continue
        for m in "qkv":
            lin(f"{group}.{m}.weight", H * D, C)
        lin(f"{group}.o.weight", C, H * D)
    if cfg["sparseHeads"] > 0:
        lin("router.weight", cfg["sparseHeads"], C)
    return p


def time_fwd_bwd(p, x, cfg, warmup, iters):
    def step():
        y = mosa_layer(p, x, cfg)
        y.sum().backward()
        for t in list(p.values()) + [x]:
            t.grad = None

    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    times = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        step()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2], peak


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "bench-out"))
    ap.add_argument("--iters", type=int, default=10)
    args = ap.parse_args()
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    dev = "cuda"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    results = {}
    # Cross-check: attnkit's weights and input through this implementation.
    check = os.path.join(args.out, "torch-check.safetensors")
    if os.path.exists(check):
        t, meta = read_safetensors(check, dev)
        cfg = json.loads(meta["config"])
        with torch.no_grad():
            y = mosa_layer(t, t["x"], cfg)
        err = ((y - t["y"]).abs().max() / t["y"].abs().max()).item()
        results["check"] = {"checkError": err}
        print(f"torch on attnkit weights: max rel error {err:.2e}")
    with open(os.path.join(args.out, "cases.json")) as f:
        cases = json.load(f)
    gen = torch.Generator(device=dev).manual_seed(0)
    for c in cases:
        cfg = c["config"]
        dt = dtypes[cfg.get("dtype", "float32")]
        p = {n: t.detach().to(dt).requires_grad_() for n, t in init_params(cfg, dev, gen).items()}
        x = torch.randn(c["batch"], c["seqLen"], cfg["dModel"], device=dev, generator=gen).to(dt).requires_grad_()
        ms, peak = time_fwd_bwd(p, x, cfg, 2, args.iters)
        results[c["name"]] = {"ms": ms, "peakBytes": peak}
        print(json.dumps({"name": c["name"], "ms": ms, "peakBytes": peak}))
        del p, x
        torch.cuda.empty_cache()
    with open(os.path.join(args.out, "torch.json"), "w") as f:
        json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "cases": results}, f, indent=1)


if __name__ == "__main__":
    main()
