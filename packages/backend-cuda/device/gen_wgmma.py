# Generates the wgmma.mma_async wrappers of kernels/wgmma.cuh (one inline-asm operand per
# accumulator register): python3 device/gen_wgmma.py > /tmp/w.inc, then paste over the wrappers.
# generates the wgmma wrappers of kernels/wgmma.cuh
out = []
def regs(n, start=0):
    return ", ".join(f"%{i}" for i in range(start, start + n))
for N in (64, 128):
    nacc = N // 2
    cons = ", ".join(f'"+f"(d[{i}])' for i in range(nacc))
    # SS: A and B from shared memory (both K-major)
    out.append(f"""__device__ __forceinline__ void wgmma_ss_n{N}(float* d, u64 da, u64 db, int scale_d) {{
  asm volatile(
      "{{\\n.reg .pred p;\\nsetp.ne.b32 p, %{nacc+2}, 0;\\n"
      "wgmma.mma_async.sync.aligned.m64n{N}k16.f32." WGMMA_T "." WGMMA_T " "
      "{{{regs(nacc)}}}, %{nacc}, %{nacc+1}, p, 1, 1, 0, 0;\\n}}\\n"
      : {cons}
      : "l"(da), "l"(db), "r"(scale_d));
}}
""")
    # SS, both transposed: A MN-major (M contiguous), B MN-major (N contiguous)
    out.append(f"""__device__ __forceinline__ void wgmma_ss_tt_n{N}(float* d, u64 da, u64 db, int scale_d) {{
  asm volatile(
      "{{\\n.reg .pred p;\\nsetp.ne.b32 p, %{nacc+2}, 0;\\n"
      "wgmma.mma_async.sync.aligned.m64n{N}k16.f32." WGMMA_T "." WGMMA_T " "
      "{{{regs(nacc)}}}, %{nacc}, %{nacc+1}, p, 1, 1, 1, 1;\\n}}\\n"
      : {cons}
      : "l"(da), "l"(db), "r"(scale_d));
}}
""")
    # RS: A from registers, B from shared memory transposed (MN-major)
    out.append(f"""__device__ __forceinline__ void wgmma_rs_n{N}(float* d, const u32* a, u64 db, int scale_d) {{
  asm volatile(
      "{{\\n.reg .pred p;\\nsetp.ne.b32 p, %{nacc+5}, 0;\\n"
      "wgmma.mma_async.sync.aligned.m64n{N}k16.f32." WGMMA_T "." WGMMA_T " "
      "{{{regs(nacc)}}}, {{%{nacc}, %{nacc+1}, %{nacc+2}, %{nacc+3}}}, %{nacc+4}, p, 1, 1, 1;\\n}}\\n"
      : {cons}
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(scale_d));
}}
""")
print("\n".join(out))
