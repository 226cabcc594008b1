// A CPU emulator for attnkit's CUDA C kernels, for tests on machines without a GPU. Each kernel
// source is compiled with g++ and this header (-include emu.h -DATTNKIT_EMULATE): every CUDA
// thread of a block runs as a fiber (ucontext); __syncthreads and the warp collectives (shuffles,
// ldmatrix, mma.sync, wgmma's register operand) are scheduling points where fibers wait for their block or warp. cp.async
// copies at once. It checks the kernels' indexing, masking and reductions against the CPU
// reference; it says nothing about speed or the GPU's memory model.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) alignas(n)

namespace emu {

enum State { READY, AT_BLOCK, AT_WARP, DONE };

struct Fiber {
  ucontext_t ctx;
  char* stack = nullptr;
  uint3 tid;
  int linear = 0;
  State state = READY;
};

struct WarpSlots {
  const void* ptr[32];
  uint64_t word[32];
  uint32_t a[32][4];
  uint32_t b[32][2];
  float c[32][4];
};

struct Runtime {
  std::vector<Fiber> fibers;
  ucontext_t sched;
  Fiber* cur = nullptr;
  std::function<void()> body;
  std::vector<unsigned char> dyn;
  WarpSlots warps[32];
  dim3 grid, block;
  uint3 block_idx;
};

// Internal linkage: each kernel module keeps its own runtime.
static Runtime& rt() {
  static Runtime r;
  return r;
}

constexpr size_t STACK = 256 * 1024;

inline void fiber_entry() {
  Runtime& r = rt();
  r.body();
  r.cur->state = DONE;
  swapcontext(&r.cur->ctx, &r.sched);
}

inline void yield(State s) {
  Runtime& r = rt();
  r.cur->state = s;
  swapcontext(&r.cur->ctx, &r.sched);
}

inline void run_block(int nthreads) {
  Runtime& r = rt();
  if ((int)r.fibers.size() < nthreads) r.fibers.resize(nthreads);
  for (int i = 0; i < nthreads; ++i) {
    Fiber& f = r.fibers[i];
    if (!f.stack) f.stack = static_cast<char*>(malloc(STACK));
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack;
    f.ctx.uc_stack.ss_size = STACK;
    f.ctx.uc_link = &r.sched;
    makecontext(&f.ctx, fiber_entry, 0);
    f.linear = i;
    f.tid.x = i % r.block.x;
    f.tid.y = (i / r.block.x) % r.block.y;
    f.tid.z = i / (r.block.x * r.block.y);
    f.state = READY;
  }
  for (;;) {
    bool ran = false;
    for (int i = 0; i < nthreads; ++i) {
      Fiber& f = r.fibers[i];
      if (f.state != READY) continue;
      r.cur = &f;
      swapcontext(&r.sched, &f.ctx);
      ran = true;
    }
    int done = 0, at_block = 0;
    for (int i = 0; i < nthreads; ++i) {
      done += r.fibers[i].state == DONE;
      at_block += r.fibers[i].state == AT_BLOCK;
    }
    if (done == nthreads) return;
    bool released = false;
    if (at_block > 0 && at_block + done == nthreads) {
      for (int i = 0; i < nthreads; ++i)
        if (r.fibers[i].state == AT_BLOCK) r.fibers[i].state = READY;
      released = true;
    }
    for (int w = 0; w * 32 < nthreads; ++w) {
      int waiting = 0, live = 0;
      for (int i = w * 32; i < nthreads && i < w * 32 + 32; ++i) {
        live += r.fibers[i].state != DONE;
        waiting += r.fibers[i].state == AT_WARP;
      }
      if (waiting > 0 && waiting == live) {
        for (int i = w * 32; i < nthreads && i < w * 32 + 32; ++i)
          if (r.fibers[i].state == AT_WARP) r.fibers[i].state = READY;
        released = true;
      }
    }
    if (!ran && !released) {
      fprintf(stderr, "emu: deadlock in block (%u,%u,%u): threads wait at different barriers\n", r.block_idx.x,
              r.block_idx.y, r.block_idx.z);
      abort();
    }
  }
}

inline void run_grid(dim3 g, dim3 b, unsigned smem, std::function<void()> body) {
  Runtime& r = rt();
  r.grid = g;
  r.block = b;
  r.body = std::move(body);
  r.dyn.assign(smem + 16, 0xCD);
  const int n = b.x * b.y * b.z;
  for (unsigned z = 0; z < g.z; ++z)
    for (unsigned y = 0; y < g.y; ++y)
      for (unsigned x = 0; x < g.x; ++x) {
        r.block_idx.x = x;
        r.block_idx.y = y;
        r.block_idx.z = z;
        run_block(n);
      }
}

template <typename... Args, size_t... I>
void launch_impl(void (*fn)(Args...), dim3 g, dim3 b, unsigned smem, void** params, std::index_sequence<I...>) {
  std::tuple<std::decay_t<Args>...> args{*reinterpret_cast<std::decay_t<Args>*>(params[I])...};
  run_grid(g, b, smem, [&]() { std::apply(fn, args); });
}

template <typename... Args>
void launch(void (*fn)(Args...), unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
            unsigned smem, void** params) {
  launch_impl(fn, dim3(gx, gy, gz), dim3(bx, by, bz), smem, params, std::index_sequence_for<Args...>{});
}

inline int lane() { return rt().cur->linear & 31; }
inline WarpSlots& warp() { return rt().warps[rt().cur->linear >> 5]; }
inline void* dyn_smem() { return rt().dyn.data(); }

template <typename V> V shfl_xor(V v, int mask) {
  static_assert(sizeof(V) <= 8, "shuffle of at most 8 bytes");
  WarpSlots& w = warp();
  uint64_t bits = 0;
  memcpy(&bits, &v, sizeof(V));
  w.word[lane()] = bits;
  yield(AT_WARP);
  V out;
  bits = w.word[lane() ^ mask];
  memcpy(&out, &bits, sizeof(V));
  yield(AT_WARP);
  return out;
}

// ldmatrix .x4: lanes 8j..8j+7 give the row addresses of matrix j.
inline void ldmatrix_x4(uint32_t* r, const void* p, bool trans) {
  WarpSlots& w = warp();
  const int l = lane();
  w.ptr[l] = p;
  yield(AT_WARP);
  for (int j = 0; j < 4; ++j) {
    uint16_t lo, hi;
    if (!trans) {
      const uint16_t* row = static_cast<const uint16_t*>(w.ptr[8 * j + l / 4]);
      lo = row[2 * (l % 4)];
      hi = row[2 * (l % 4) + 1];
    } else {
      lo = static_cast<const uint16_t*>(w.ptr[8 * j + 2 * (l % 4)])[l / 4];
      hi = static_cast<const uint16_t*>(w.ptr[8 * j + 2 * (l % 4) + 1])[l / 4];
    }
    r[j] = (uint32_t)lo | ((uint32_t)hi << 16);
  }
  yield(AT_WARP);
}

inline float half_bits(uint16_t v, bool is_half) {
  if (is_half) {
    __half h;
    memcpy(&h, &v, 2);
    return __half2float(h);
  }
  uint32_t u = (uint32_t)v << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

// The 16 x 16 A operand that the warp's 32 lanes hold in mma.sync's A fragment layout (w.a).
inline void a_fragment_matrix(const WarpSlots& w, float A[16][16], bool is_half) {
  for (int L = 0; L < 32; ++L) {
    const int g = L / 4, t = L % 4;
    auto lo = [&](uint32_t v) { return half_bits((uint16_t)(v & 0xffff), is_half); };
    auto hi = [&](uint32_t v) { return half_bits((uint16_t)(v >> 16), is_half); };
    A[g][2 * t] = lo(w.a[L][0]);
    A[g][2 * t + 1] = hi(w.a[L][0]);
    A[g + 8][2 * t] = lo(w.a[L][1]);
    A[g + 8][2 * t + 1] = hi(w.a[L][1]);
    A[g][2 * t + 8] = lo(w.a[L][2]);
    A[g][2 * t + 9] = hi(w.a[L][2]);
    A[g + 8][2 * t + 8] = lo(w.a[L][3]);
    A[g + 8][2 * t + 9] = hi(w.a[L][3]);
  }
}

// mma.sync.m16n8k16.row.col, float32 accumulation, fragment layouts of the PTX ISA.
inline void mma16816(float* d, const uint32_t* a, uint32_t b0, uint32_t b1, bool is_half) {
  WarpSlots& w = warp();
  const int l = lane();
  for (int i = 0; i < 4; ++i) {
    w.a[l][i] = a[i];
    w.c[l][i] = d[i];
  }
  w.b[l][0] = b0;
  w.b[l][1] = b1;
  yield(AT_WARP);
  float A[16][16], B[16][8];
  a_fragment_matrix(w, A, is_half);
  for (int L = 0; L < 32; ++L) {
    const int g = L / 4, t = L % 4;
    auto lo = [&](uint32_t v) { return half_bits((uint16_t)(v & 0xffff), is_half); };
    auto hi = [&](uint32_t v) { return half_bits((uint16_t)(v >> 16), is_half); };
    B[2 * t][g] = lo(w.b[L][0]);
    B[2 * t + 1][g] = hi(w.b[L][0]);
    B[2 * t + 8][g] = lo(w.b[L][1]);
    B[2 * t + 9][g] = hi(w.b[L][1]);
  }
  const int g = l / 4, t = l % 4;
  const int rows[4] = {g, g, g + 8, g + 8};
  const int cols[4] = {2 * t, 2 * t + 1, 2 * t, 2 * t + 1};
  float out[4];
  for (int i = 0; i < 4; ++i) {
    float s = w.c[l][i];
    for (int k = 0; k < 16; ++k) s += A[rows[i]][k] * B[k][cols[i]];
    out[i] = s;
  }
  yield(AT_WARP);
  for (int i = 0; i < 4; ++i) d[i] = out[i];
}

// wgmma (Hopper warpgroup MMA, kernels/wgmma.cuh), m64nNk16 with float32 accumulators: shared
// operands are read through their matrix descriptors (start, LBO, SBO; 128-byte swizzle only),
// K-major or MN-major, at the layouts the H100 self-test (device/wgmma_selftest.cu) confirmed.
// The product is computed at issue: the asynchronous completion (commit/wait) is not modelled.
inline uint32_t smem_offset(const void* p) {
  return (uint32_t)(static_cast<const unsigned char*>(p) - rt().dyn.data());
}

// Element (i along M or N, j along K) of a shared operand.
inline uint16_t wgmma_elem(uint64_t desc, bool mn_major, int i, int j) {
  if ((desc >> 62) != 1) {
    fprintf(stderr, "emu: wgmma descriptor without the 128-byte swizzle is not emulated\n");
    abort();
  }
  const uint32_t start = (uint32_t)(desc & 0x3FFF) << 4;
  const uint32_t lbo = (uint32_t)((desc >> 16) & 0x3FFF) << 4;
  const uint32_t sbo = (uint32_t)((desc >> 32) & 0x3FFF) << 4;
  const uint32_t logical = mn_major ? start + (j / 8) * sbo + (j % 8) * 128 + (i / 64) * lbo + (i % 64) * 2
                                    : start + (i / 8) * sbo + (i % 8) * 128 + j * 2;
  const uint32_t phys = logical ^ (((logical >> 7) & 7) << 4);
  if (phys + 2 > rt().dyn.size()) {
    fprintf(stderr, "emu: wgmma operand outside shared memory (offset %u)\n", phys);
    abort();
  }
  uint16_t v;
  memcpy(&v, rt().dyn.data() + phys, 2);
  return v;
}

// This thread's accumulators: rows 16 * (warp % 4) + g (+ 8), columns 8 * nb + 2 * t (+ 1).
inline void wgmma_ss(float* d, int n, uint64_t da, uint64_t db, int scale_d, bool ta, bool tb, bool is_half) {
  const int l = lane(), wq = (rt().cur->linear >> 5) & 3, g = l / 4, t = l % 4;
  for (int nb = 0; nb < n / 8; ++nb)
    for (int i = 0; i < 4; ++i) {
      const int m = 16 * wq + g + 8 * (i >> 1), c = 8 * nb + 2 * t + (i & 1);
      float acc = scale_d ? d[nb * 4 + i] : 0.f;
      for (int k = 0; k < 16; ++k)
        acc += half_bits(wgmma_elem(da, ta, m, k), is_half) * half_bits(wgmma_elem(db, tb, c, k), is_half);
      d[nb * 4 + i] = acc;
    }
}

// A from registers (each warp holds its 16 rows, mma.sync's A fragment layout), B MN-major.
inline void wgmma_rs(float* d, int n, const uint32_t* a, uint64_t db, int scale_d, bool is_half) {
  WarpSlots& w = warp();
  const int l = lane();
  for (int i = 0; i < 4; ++i) w.a[l][i] = a[i];
  yield(AT_WARP);
  float A[16][16];
  a_fragment_matrix(w, A, is_half);
  yield(AT_WARP);
  const int g = l / 4, t = l % 4;
  for (int nb = 0; nb < n / 8; ++nb)
    for (int i = 0; i < 4; ++i) {
      const int r = g + 8 * (i >> 1), c = 8 * nb + 2 * t + (i & 1);
      float acc = scale_d ? d[nb * 4 + i] : 0.f;
      for (int k = 0; k < 16; ++k) acc += A[r][k] * half_bits(wgmma_elem(db, true, c, k), is_half);
      d[nb * 4 + i] = acc;
    }
}

}  // namespace emu

#define threadIdx (emu::rt().cur->tid)
#define blockIdx (emu::rt().block_idx)
#define blockDim (emu::rt().block)
#define gridDim (emu::rt().grid)

inline void __syncthreads() { emu::yield(emu::AT_BLOCK); }
template <typename V> inline V __shfl_xor_sync(unsigned, V v, int mask) { return emu::shfl_xor(v, mask); }
inline bool __any_sync(unsigned, bool pred) {
  emu::WarpSlots& w = emu::warp();
  w.word[emu::lane()] = pred ? 1 : 0;
  emu::yield(emu::AT_WARP);
  bool any = false;
  for (int i = 0; i < 32; ++i) any |= w.word[i] != 0;
  emu::yield(emu::AT_WARP);
  return any;
}
inline float __int_as_float(int i) {
  float f;
  memcpy(&f, &i, 4);
  return f;
}
inline float atomicAdd(float* p, float v) {
  const float o = *p;
  *p = o + v;
  return o;
}
inline int atomicAdd(int* p, int v) {
  const int o = *p;
  *p = (int)((unsigned)o + (unsigned)v);
  return o;
}
inline unsigned atomicAdd(unsigned* p, unsigned v) {
  const unsigned o = *p;
  *p = o + v;
  return o;
}
inline int atomicCAS(int* p, int cmp, int v) {
  const int o = *p;
  if (o == cmp) *p = v;
  return o;
}
inline int atomicMin(int* p, int v) {
  const int o = *p;
  if (v < o) *p = v;
  return o;
}
inline int atomicMax(int* p, int v) {
  const int o = *p;
  if (v > o) *p = v;
  return o;
}
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }

#define ATTNKIT_EMU_KERNEL(name)                                                                                      \
  extern "C" __attribute__((visibility("default"))) void emu_launch_##name(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, \
                                    unsigned smem, void** params) {                                                \
    emu::launch(name, gx, gy, gz, bx, by, bz, smem, params);                                                       \
  }
