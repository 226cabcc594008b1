// Runs the package's CUDA C kernels on the CPU, for tests on machines without a GPU. The
// kernel source is compiled with g++ after this header (TPA_EMULATE defined): every thread of a
// block is a fiber (ucontext); __syncthreads and the warp collectives (shuffles, ldmatrix,
// mma.sync) are points where a fiber waits for its block or its warp. cp.async copies at once.
// It checks indexing, masking, fragment layouts and reductions against the CPU reference; it
// says nothing about speed or the GPU's memory model. Fragment layouts follow the PTX ISA
// (mma.m16n8k16 with .f16 / .bf16 inputs, ldmatrix .m8n8 .b16 with and without .trans).
#pragma once
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#include <functional>
#include <vector>

#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
};
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};
struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(8) float2 {
  float x, y;
};
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
inline float2 make_float2(float x, float y) { return float2{x, y}; }
inline float __uint_as_float(unsigned u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline int min(int a, int b) { return a < b ? a : b; }

namespace emu {

inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    const float v = ldexpf((float)mant, -24);
    return sign ? -v : v;
  }
  if (exp == 31) bits = sign | 0x7f800000u | (mant << 13);
  else bits = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  return __uint_as_float(bits);
}

// Round to nearest even, as cvt.rn.f16.f32.
inline uint16_t f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const int32_t e8 = (x >> 23) & 0xff;
  uint32_t mant = x & 0x7fffffu;
  if (e8 == 0xff) return (uint16_t)(sign | 0x7c00u | (mant ? 0x200u : 0u));
  const int32_t exp = e8 - 127 + 15;
  if (exp >= 31) return (uint16_t)(sign | 0x7c00u);
  if (exp <= 0) {
    if (exp < -10) return (uint16_t)sign;
    mant |= 0x800000u;
    const int shift = 14 - exp;
    uint32_t half = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1);
    const uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1u))) half++;
    return (uint16_t)(sign | half);
  }
  uint32_t half = sign | ((uint32_t)exp << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) half++;
  return (uint16_t)half;
}

inline uint16_t f32_to_bf16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  if ((x & 0x7f800000u) == 0x7f800000u && (x & 0x7fffffu)) return (uint16_t)((x >> 16) | 0x40u);
  return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

inline float bits16(uint16_t v, bool isHalf) { return isHalf ? f16_to_f32(v) : __uint_as_float((uint32_t)v << 16); }

enum State { READY, AT_BLOCK, AT_WARP, DONE };

struct Fiber {
  ucontext_t ctx;
  char* stack = nullptr;
  uint3 tid;
  int linear = 0;
  State state = READY;
};

struct Warp {
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
  std::vector<Warp> warps;
  dim3 grid, block;
  uint3 blockIdx;
};

inline Runtime& rt() {
  static Runtime r;
  return r;
}

constexpr size_t STACK = 512 * 1024;

inline void entry() {
  Runtime& r = rt();
  r.body();
  r.cur->state = DONE;
  swapcontext(&r.cur->ctx, &r.sched);
}

inline void wait(State s) {
  Runtime& r = rt();
  r.cur->state = s;
  swapcontext(&r.cur->ctx, &r.sched);
}

inline void run_block(int n) {
  Runtime& r = rt();
  if ((int)r.fibers.size() < n) r.fibers.resize(n);
  r.warps.resize((n + 31) / 32);
  for (int i = 0; i < n; ++i) {
    Fiber& f = r.fibers[i];
    if (!f.stack) f.stack = static_cast<char*>(malloc(STACK));
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack;
    f.ctx.uc_stack.ss_size = STACK;
    f.ctx.uc_link = &r.sched;
    makecontext(&f.ctx, entry, 0);
    f.linear = i;
    f.tid = uint3{i % r.block.x, (i / r.block.x) % r.block.y, i / (r.block.x * r.block.y)};
    f.state = READY;
  }
  for (;;) {
    bool ran = false;
    for (int i = 0; i < n; ++i) {
      Fiber& f = r.fibers[i];
      if (f.state != READY) continue;
      r.cur = &f;
      swapcontext(&r.sched, &f.ctx);
      ran = true;
    }
    int done = 0, atBlock = 0;
    for (int i = 0; i < n; ++i) {
      done += r.fibers[i].state == DONE;
      atBlock += r.fibers[i].state == AT_BLOCK;
    }
    if (done == n) return;
    bool released = false;
    if (atBlock > 0 && atBlock + done == n) {
      for (int i = 0; i < n; ++i)
        if (r.fibers[i].state == AT_BLOCK) r.fibers[i].state = READY;
      released = true;
    }
    for (int w = 0; w * 32 < n; ++w) {
      int waiting = 0, live = 0;
      for (int i = w * 32; i < n && i < w * 32 + 32; ++i) {
        live += r.fibers[i].state != DONE;
        waiting += r.fibers[i].state == AT_WARP;
      }
      if (waiting > 0 && waiting == live) {
        for (int i = w * 32; i < n && i < w * 32 + 32; ++i)
          if (r.fibers[i].state == AT_WARP) r.fibers[i].state = READY;
        released = true;
      }
    }
    if (!ran && !released) {
      fprintf(stderr, "emu: deadlock in block (%u, %u, %u): threads wait at different barriers\n", r.blockIdx.x,
              r.blockIdx.y, r.blockIdx.z);
      abort();
    }
  }
}

inline void run_grid(dim3 g, dim3 b, std::function<void()> body) {
  Runtime& r = rt();
  r.grid = g;
  r.block = b;
  r.body = std::move(body);
  for (unsigned z = 0; z < g.z; ++z)
    for (unsigned y = 0; y < g.y; ++y)
      for (unsigned x = 0; x < g.x; ++x) {
        r.blockIdx = uint3{x, y, z};
        run_block((int)(b.x * b.y * b.z));
      }
}

inline int lane() { return rt().cur->linear & 31; }
inline Warp& warp() { return rt().warps[rt().cur->linear >> 5]; }

template <typename V>
V shfl_xor(V v, int mask) {
  Warp& w = warp();
  uint64_t bits = 0;
  memcpy(&bits, &v, sizeof(V));
  w.word[lane()] = bits;
  wait(AT_WARP);
  bits = w.word[lane() ^ mask];
  V out;
  memcpy(&out, &bits, sizeof(V));
  wait(AT_WARP);
  return out;
}

inline void cp_async16(void* dst, const void* src, unsigned bytes) {
  if (bytes) memcpy(dst, src, 16);
  else memset(dst, 0, 16);
}

// ldmatrix .x4: lanes 8j .. 8j+7 give the row addresses of matrix j; register j of lane l holds
// (row l/4, cols 2(l%4), +1) of matrix j, or with .trans (rows 2(l%4), +1; col l/4).
inline void ldmatrix_x4(uint32_t* r, const void* p, bool trans) {
  Warp& w = warp();
  const int l = lane();
  w.ptr[l] = p;
  wait(AT_WARP);
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
  wait(AT_WARP);
}

// mma.sync.m16n8k16.row.col, float32 accumulation: a0 (g, 2t..), a1 (g+8, 2t..), a2 (g, 2t+8..),
// a3 (g+8, 2t+8..); b0 (k 2t.., n g), b1 (k 2t+8.., n g); c0, c1 (g, 2t..), c2, c3 (g+8, 2t..).
inline void mma16816(float* d, const uint32_t* a, uint32_t b0, uint32_t b1, bool isHalf) {
  Warp& w = warp();
  const int l = lane();
  for (int i = 0; i < 4; ++i) {
    w.a[l][i] = a[i];
    w.c[l][i] = d[i];
  }
  w.b[l][0] = b0;
  w.b[l][1] = b1;
  wait(AT_WARP);
  float A[16][16], B[16][8];
  for (int L = 0; L < 32; ++L) {
    const int g = L / 4, t = L % 4;
    auto lo = [&](uint32_t v) { return bits16((uint16_t)(v & 0xffffu), isHalf); };
    auto hi = [&](uint32_t v) { return bits16((uint16_t)(v >> 16), isHalf); };
    A[g][2 * t] = lo(w.a[L][0]);
    A[g][2 * t + 1] = hi(w.a[L][0]);
    A[g + 8][2 * t] = lo(w.a[L][1]);
    A[g + 8][2 * t + 1] = hi(w.a[L][1]);
    A[g][2 * t + 8] = lo(w.a[L][2]);
    A[g][2 * t + 9] = hi(w.a[L][2]);
    A[g + 8][2 * t + 8] = lo(w.a[L][3]);
    A[g + 8][2 * t + 9] = hi(w.a[L][3]);
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
  wait(AT_WARP);
  for (int i = 0; i < 4; ++i) d[i] = out[i];
}

}  // namespace emu

#define threadIdx (emu::rt().cur->tid)
#define blockIdx (emu::rt().blockIdx)
#define blockDim (emu::rt().block)
#define gridDim (emu::rt().grid)

inline void __syncthreads() { emu::wait(emu::AT_BLOCK); }
template <typename V>
inline V __shfl_xor_sync(unsigned, V v, int mask) {
  return emu::shfl_xor(v, mask);
}
inline float atomicAdd(float* p, float v) {
  const float o = *p;
  *p = o + v;
  return o;
}
