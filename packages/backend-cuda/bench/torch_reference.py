"""PyTorch reference timings for @attnkit/backend-cuda's benchmark, on the same GPU in the same run.

Times torch.matmul (bf16, n x n x n) and F.scaled_dot_product_attention (bf16, causal) forward and
forward+backward on random data with CUDA events (median of several timed batches after warm-up).
Prints a table, or one JSON line with --json.
"""
import argparse
import json
import statistics
import sys


def timed(fn, warmup=3, iters=10, reps=5):
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(reps):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(iters):
            fn()
        b.record()
        b.synchronize()
        out.append(a.elapsed_time(b) / iters)
    return statistics.median(out)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--json", action="store_true")
    p.add_argument("--matmul", type=int, default=8192)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--seq", type=int, default=4096)
    p.add_argument("--head-dim", type=int, default=128)
    a = p.parse_args()
    try:
        import torch
        import torch.nn.functional as F
    except Exception as e:  # noqa: BLE001
        print(json.dumps({"torch": "", "device": "", "error": f"no torch: {e}"}))
        return 0
    if not torch.cuda.is_available():
        print(json.dumps({"torch": torch.__version__, "device": "", "error": "torch sees no CUDA device"}))
        return 0
    torch.backends.cuda.matmul.allow_tf32 = False
    dev = "cuda"
    g = torch.Generator(device=dev).manual_seed(0)
    n = a.matmul
    x = torch.randn(n, n, device=dev, dtype=torch.bfloat16, generator=g)
    y = torch.randn(n, n, device=dev, dtype=torch.bfloat16, generator=g)
    mm_ms = timed(lambda: torch.matmul(x, y))
    del x, y
    B, H, T, D = a.batch, a.heads, a.seq, a.head_dim
    q, k, v, do = (torch.randn(B, H, T, D, device=dev, dtype=torch.bfloat16, generator=g) for _ in range(4))
    fwd_ms = timed(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True))
    qg, kg, vg = (t.clone().requires_grad_(True) for t in (q, k, v))

    def fwd_bwd():
        o = F.scaled_dot_product_attention(qg, kg, vg, is_causal=True)
        o.backward(do)
        qg.grad = kg.grad = vg.grad = None

    fb_ms = timed(fwd_bwd, warmup=2)
    flops = 4 * B * H * T * T * D / 2
    r = {
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(),
        "matmul": {"ms": mm_ms, "tflops": 2 * n**3 / mm_ms / 1e9},
        "attention": {
            "forwardMs": fwd_ms,
            "forwardTflops": flops / fwd_ms / 1e9,
            "forwardBackwardMs": fb_ms,
            "forwardBackwardTflops": 3.5 * flops / fb_ms / 1e9,
        },
    }
    if a.json:
        print(json.dumps(r))
    else:
        print(f"torch {r['torch']} on {r['device']}")
        print(f"matmul {n}^3 bf16: {mm_ms:.3f} ms, {r['matmul']['tflops']:.1f} TFLOP/s")
        at = r["attention"]
        print(f"sdpa causal ({B},{H},{T},{D}) fwd: {fwd_ms:.3f} ms, {at['forwardTflops']:.1f} TFLOP/s")
        print(f"sdpa causal fwd+bwd: {fb_ms:.3f} ms, {at['forwardBackwardTflops']:.1f} TFLOP/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
