// Runs CUDA C kernels on the CPU for tests: each block's threads are cooperative fibers
// (ucontext) switched at every __syncthreads and warp-level sync point, so barriers, shared memory
// (function statics, one block at a time), warp shuffles and atomics behave as on the GPU for
// kernels whose threads all reach the same barriers and whose warps' lanes agree on their branches. Float maths is the host's, in the same precision.
#include <ucontext.h>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

struct dim3 { unsigned x = 1, y = 1, z = 1; };
static dim3 blockIdx, blockDim, gridDim;
struct EmuThread { dim3 idx; ucontext_t ctx; };
static std::vector<EmuThread> emu_threads;
static ucontext_t emu_main;
static int emu_cur = 0;
#define threadIdx (emu_threads[emu_cur].idx)

#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __shared__ static
#define __launch_bounds__(...)

// Threads run in turn, lane by lane. At a block barrier the warp's last lane hands over to the
// next warp (the block's last warp to the first), so every thread reaches it before any passes; at
// a warp-level sync point (shuffles, mma, __syncwarp) it hands back to its own warp's first lane,
// so a warp may take a branch the others skip (as warps do on the GPU) as long as its own lanes agree.
static void emu_switch(bool block) {
  const int n = (int)emu_threads.size();
  if (n <= 1) return;
  const int from = emu_cur, warp0 = from & ~31, lanes = n - warp0 < 32 ? n - warp0 : 32;
  int next = from + 1;
  if (next == warp0 + lanes) next = block ? next % n : warp0;
  emu_cur = next;
  if (next != from) swapcontext(&emu_threads[from].ctx, &emu_threads[next].ctx);
}
static inline void __syncthreads() { emu_switch(true); }
static inline void __syncwarp(unsigned = 0xffffffffu) { emu_switch(false); }
static float emu_shfl[1024];
static inline float __shfl_xor_sync(unsigned, float v, int lane) {
  int t = emu_cur;
  emu_shfl[t] = v;
  __syncwarp();
  float r = emu_shfl[(t & ~31) | ((t & 31) ^ lane)];
  __syncwarp();
  return r;
}
static inline unsigned atomicAdd(unsigned* p, unsigned v) { unsigned o = *p; *p = o + v; return o; }
static inline float atomicAdd(float* p, float v) { float o = *p; *p = o + v; return o; }
static inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
static inline int min(int a, int b) { return a < b ? a : b; }
static inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }

static inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
struct float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
static inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
// Dynamic shared memory: one static block of 1 MiB (a block's worth, reused block after block).
#define MOSA_DYNAMIC_SMEM(name) static float4 name[65536]
static inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
static inline float __fmul_rn(float a, float b) { return a * b; }
// Tensor-core emulation for the kernels' mosa_tf32 / mosa_mma (mma.sync.m16n8k8 TF32 -> float32):
// cvt.rna.tf32.f32 rounds to 10 mantissa bits, ties away from zero; the warp's fragments meet in
// statics between two warp-level sync points (the warp calls it in lockstep, as it does on the GPU).
#define MOSA_EMU 1
static inline unsigned mosa_tf32(float x) {
  unsigned b = __float_as_uint(x);
  if ((b & 0x7f800000u) == 0x7f800000u) return b;
  return (b + 0x1000u) & 0xffffe000u;
}
static unsigned emu_mma_a[1024][4];
static unsigned emu_mma_b[1024][2];
static inline void mosa_mma(float (&c)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
  const int t = emu_cur, base = t & ~31, lane = t & 31;
  for (int i = 0; i < 4; ++i) emu_mma_a[t][i] = a[i];
  for (int i = 0; i < 2; ++i) emu_mma_b[t][i] = b[i];
  __syncwarp();
  const int g = lane >> 2, q = lane & 3;
  for (int e = 0; e < 4; ++e) {
    const int row = g + (e >= 2 ? 8 : 0), col = 2 * q + (e & 1);
    float acc = c[e];
    for (int k = 0; k < 8; ++k) {
      const float av = __uint_as_float(emu_mma_a[base + (row % 8) * 4 + k % 4][(row >= 8 ? 1 : 0) + (k >= 4 ? 2 : 0)]);
      const float bv = __uint_as_float(emu_mma_b[base + col * 4 + k % 4][k >= 4 ? 1 : 0]);
      acc += av * bv;
    }
    c[e] = acc;
  }
  __syncwarp();
}
static inline float mosa_ex2(float x) { return exp2f(x); }
// Atomic reductions: fibers never interleave inside a call, so a plain add is atomic here.
static inline void mosa_red2(float* p, float a, float b) { p[0] += a; p[1] += b; }
static inline void mosa_red4(float* p, float a, float b, float c, float d) { p[0] += a; p[1] += b; p[2] += c; p[3] += d; }
