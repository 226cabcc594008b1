import { cudaTiles } from './tiles.js'

/**
 * CUDA C source of the fused MoSA kernels for one head dimension (NVRTC or nvcc; float32 data,
 * float32 accumulation; RoPE angles in double). Every kernel but the forward attention runs 256
 * threads as a 16 x 16 grid (ty, tx); the forward attention runs 128 (mosaCudaThreads). Binding
 * follows core's ProgramSpec convention: input pointers, output pointers, then scalars.
 *
 * Kernels (per batch element b and MoSA head h; K = selected tokens, C = dModel):
 *  mosa_select                  radix top-k of the router logits + compaction in position order
 *  mosa_project                 gathered rows x W_h^T for Q, K, V + RoPE at original positions
 *  mosa_attend                  causal flash attention among the K tokens (+ log-sum-exp)
 *  mosa_attend_part / _combine  the same split over key ranges, for few long rows (dense heads)
 *  mosa_out_scatter             (score * out) x Wo_h^T, atomically added at the selected rows
 *  mosa_out_backward            d out and d score from dy (gathered rows) x Wo_h
 *  mosa_attend_delta            dout . out per query row (the backward's row term, once)
 *  mosa_attend_backward         dK, dV per key tile and dQ per query tile (one launch)
 *  mosa_attend_backward_atomic  dK, dV per key tile, dQ added atomically from each key tile
 *  mosa_attend_backward_rb      the same with scores, P and dS in mma registers (the default; 128 threads)
 *  mosa_project_backward_input  [dq | dk | dv] x W_h, atomically added at the selected rows of dx
 *  mosa_weight_grad_qkv         dWq, dWk, dWv = [dq | dk | dv]^T x gathered x rows
 *  mosa_weight_grad_out         dWo = gathered dy rows^T x (score * out)
 *  mosa_gather_rows(_scaled), mosa_scatter_rows, mosa_stack3(_unrope), mosa_unstack3(_rope),
 *  mosa_heads_to_columns:       row moves around the backend's batched GEMMs (the library-GEMM route)
 *
 * The GEMMs share one main loop (mosa_gemm): a 128 x (16 TN) block tile on the tensor cores in
 * float32 accuracy (3xTF32: mma.sync m16n8k8 on TF32 halves of each operand), the next chunk
 * fetched into registers while this one is used, the tile handed to the epilogue through shared
 * memory as 8 x TN outputs per thread. The forward attention keeps each warp's rows in mma
 * registers (FlashAttention-2 order, mosa_fa_tile: 4 warps of 32 query rows for D <= 64, of 16
 * above, against 32-key tiles). The backward attention kernels use 64 x 64 tiles: their products
 * (S, dP, dV, dK, dQ) on the tensor cores the same way (each warp a 16-row strip), the softmax and
 * dS elementwise per thread (4 x 4 each) on the score tile in shared memory. Shared memory is
 * dynamic (mosaCudaSharedBytes).
 */
export interface MosaCudaOptions {
  /**
   * Unroll factor of the 8-deep steps of the warp's 3xTF32 tile product (mosa_warp_mma); 0 unrolls
   * fully (the attention products, 8 steps over 64, then keep their fragment loads and products
   * of later steps in flight). Default 2.
   */
  fragmentUnroll?: number
  /**
   * The same unroll for the attention backward with dQ blocks (mosa_attend_backward: the dense
   * heads' long rows); default 0 (fully: measured faster there, slower in the other kernels).
   */
  dqBlocksUnroll?: number
  /**
   * The attention kernels' tile loads: each thread's float4 loads issued together before they are
   * stored to shared memory (default true); false: the earlier strided loop (bench A/B).
   */
  batchedRowLoads?: boolean
  /**
   * The GEMMs' operands split into their TF32 halves once, when a chunk is staged in shared memory
   * (swizzled (big, small) pairs, one 16-byte load per fragment row; default true); false: split
   * at every fragment load (the earlier main loop, bench A/B).
   */
  splitStage?: boolean
  /**
   * The attention backward as mosa_attend_backward_rb (scores, P and dS in mma registers, operands
   * split once when staged; default true); false: only the earlier kernels (bench A/B).
   */
  registerBackward?: boolean
  /**
   * The forward attention (mosa_attend, mosa_attend_part) in FlashAttention-2 order: each warp
   * keeps its query rows' scores, softmax and output in mma registers, 128 threads and
   * mosaAttendQueries(D) queries per block (default true); false: the earlier kernel (256
   * threads, 64 queries, scores and probabilities through shared memory; bench A/B).
   */
  registerAttend?: boolean
  /** Keys per tile of the register forward (16, 32 or 64; 0, the default: 32, 16 for D = 128). */
  attendKeyTile?: number
  /** Blocks per SM the register forward is compiled for (its __launch_bounds__; 0, the default: 2). */
  attendMinBlocks?: number
  /**
   * The register forward keeps Q split in its TF32 halves in shared memory (default true: split
   * once, twice the bytes); false: unsplit, split at every key tile (bench A/B).
   */
  attendSplitQ?: boolean
}

/** Queries per block of the forward attention (mosa_attend, mosa_attend_part and their combine). */
export function mosaAttendQueries(D: number, opts: MosaCudaOptions = {}): number {
  return (opts.registerAttend ?? true) ? (D <= 64 ? 128 : 64) : cudaTiles(D).BQ
}

function registerAttendShape(D: number, opts: MosaCudaOptions) {
  // D = 128: 16-key tiles, the staging registers of 32 keys would spill.
  const keys = opts.attendKeyTile || (D > 96 ? 16 : 32)
  // Whole 8-float staging units for each of the 128 threads.
  if (![16, 32, 64].includes(keys) || (keys * D) % 1024 !== 0)
    throw new Error(
      `mosaCudaSource: attendKeyTile ${keys} does not fit head dim ${D} (16, 32 or 64, keys x D a multiple of 1024)`,
    )
  // The block's Q rows (split or not), and a tile of K and of V split in two halves.
  const splitQ = opts.attendSplitQ ?? true
  const bytes = (mosaAttendQueries(D, opts) * (splitQ ? 2 : 1) + 4 * keys) * D * 4
  const blocks = opts.attendMinBlocks || 2
  return { keys, bytes, blocks, splitQ }
}

/** Threads per block of a fused CUDA kernel (the forward attention's depend on the variant). */
export function mosaCudaThreads(entry: string, opts: MosaCudaOptions = {}): number {
  const forward = entry === 'mosa_attend' || entry === 'mosa_attend_part'
  return forward && (opts.registerAttend ?? true) ? 128 : 256
}

export function mosaCudaSource(D: number, opts: MosaCudaOptions = {}): string {
  const unroll = opts.fragmentUnroll ?? 2
  const batched = opts.batchedRowLoads ?? true
  // Split staging's k-major stores need the staged row count (128, or the head dim) to divide the
  // 256 threads: D = 96 stages the earlier way.
  const splitStage = (opts.splitStage ?? true) && 256 % D === 0
  const dqBlocksUnroll = opts.dqBlocksUnroll ?? 0
  const registerBackward = opts.registerBackward ?? true
  const registerAttend = opts.registerAttend ?? true
  const fa = registerAttendShape(D, opts)
  // 0: fully (every fragment loop runs at most 16 steps).
  const unrollCount = (u: number) => (u === 0 ? 16 : u)
  const t = cudaTiles(D)
  if (D % 32 !== 0 || D > 128)
    throw new Error(`mosaCudaSource: head dim must be a multiple of 32 up to 128, got ${D}`)
  return `// @attnkit/mosa fused kernels, head dim ${D}
#define D ${D}
#define MOSA_BATCHED_ROWS ${batched ? 1 : 0}
#define MOSA_SPLIT_STAGE ${splitStage ? 1 : 0}
#define MOSA_REGISTER_BACKWARD ${registerBackward ? 1 : 0}
#define MOSA_REGISTER_ATTEND ${registerAttend ? 1 : 0}
#define FKT ${fa.keys}
#define MOSA_FA_BLOCKS ${fa.blocks}
#define MOSA_FA_SPLIT_Q ${fa.splitQ ? 1 : 0}
#define MOSA_UNROLL ${unrollCount(unroll)}
#define MOSA_DQB_UNROLL ${unrollCount(dqBlocksUnroll)}
#define TN (D / 16)
#define BM ${t.BM}
#define BN ${t.BN}
#define GK ${t.BK}
#define AB ${t.BQ}
#define TM (BM / 16)
#define LDG (GK + 4)
#define LDH (D + 4)
#define LDA (AB + 4)
typedef unsigned int u32;
// NVRTC has no standard headers: no size_t or INFINITY unless we define them.
typedef unsigned long long usize;
#ifndef INFINITY
#define INFINITY (__int_as_float(0x7f800000))
#endif
// GEMM kernels: two blocks per multiprocessor where the tile fits in 128 registers a thread.
#define MOSA_GEMM_BOUNDS __launch_bounds__(256, D <= 64 ? 2 : 1)
// Forward attention: three blocks per SM fit in shared memory for D <= 64 (70 KB each); the cap
// (80 registers) keeps them resident with the batched tile loads' registers.
#define MOSA_ATTEND_BOUNDS __launch_bounds__(256, D <= 64 ? 3 : 1)
#ifndef MOSA_DYNAMIC_SMEM
#define MOSA_DYNAMIC_SMEM(name) extern __shared__ float4 name[]
#endif

__device__ __forceinline__ u32 mosa_key(float f) {
  // Order-preserving map of floats to unsigned ints (-0 counts as +0, NaN above +inf).
  u32 b = __float_as_uint(f);
  if (b == 0x80000000u) b = 0u;
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

__device__ __forceinline__ float mosa_sum16(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 8);
  v += __shfl_xor_sync(0xffffffffu, v, 4);
  v += __shfl_xor_sync(0xffffffffu, v, 2);
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v;
}

__device__ __forceinline__ float mosa_max16(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 8));
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 4));
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return v;
}

__device__ __forceinline__ float4 mosa_ld4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ void mosa_st4(float* p, float4 v) { *reinterpret_cast<float4*>(p) = v; }
__device__ __forceinline__ float mosa_dot4(float4 a, float4 b, float acc) {
  acc = fmaf(a.x, b.x, acc);
  acc = fmaf(a.y, b.y, acc);
  acc = fmaf(a.z, b.z, acc);
  return fmaf(a.w, b.w, acc);
}
// TN consecutive floats (TN = D / 16 is 2, 4, 6 or 8) from shared memory, 16-byte aligned when TN % 4 == 0.
__device__ __forceinline__ void mosa_ldn(float (&dst)[TN], const float* p) {
#if TN % 4 == 0
#pragma unroll
  for (int u = 0; u < TN; u += 4) {
    const float4 v = mosa_ld4(p + u);
    dst[u] = v.x;
    dst[u + 1] = v.y;
    dst[u + 2] = v.z;
    dst[u + 3] = v.w;
  }
#else
#pragma unroll
  for (int u = 0; u < TN; ++u) dst[u] = p[u];
#endif
}

// One block per (b, h) row of logits [B*Hs, T]: 4 radix passes find the k-th largest key, then
// a scan over contiguous chunks writes the selected positions in ascending order, so no sort.
extern "C" __global__ void __launch_bounds__(256) mosa_select(const float* __restrict__ logits,
    int* __restrict__ indices, float* __restrict__ scores, int T, int k) {
  __shared__ u32 hist[256];
  __shared__ u32 scanGt[256];
  __shared__ u32 scanEq[256];
  __shared__ u32 sPrefix;
  __shared__ u32 sNeed;
  const int tid = threadIdx.x;
  const usize row = blockIdx.x;
  const float* x = logits + row * (usize)T;
  u32 prefix = 0u, mask = 0u, need = (u32)k;
  for (int shift = 24; shift >= 0; shift -= 8) {
    hist[tid] = 0u;
    __syncthreads();
    for (int i = tid; i < T; i += 256) {
      u32 key = mosa_key(x[i]);
      if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 255u], 1u);
    }
    __syncthreads();
    if (tid == 0) {
      u32 above = 0u;
      for (int d = 255; d >= 0; --d) {
        u32 c = hist[d];
        if (above + c >= need) {
          sPrefix = prefix | ((u32)d << shift);
          sNeed = need - above;
          break;
        }
        above += c;
      }
    }
    __syncthreads();
    prefix = sPrefix;
    need = sNeed;
    mask |= 255u << shift;
  }
  // prefix is now the k-th largest key; take every larger key and the first 'need' equal ones.
  const int chunk = (T + 255) / 256;
  const int begin = min(T, tid * chunk);
  const int end = min(T, begin + chunk);
  u32 gt = 0u, eq = 0u;
  for (int i = begin; i < end; ++i) {
    u32 key = mosa_key(x[i]);
    gt += key > prefix ? 1u : 0u;
    eq += key == prefix ? 1u : 0u;
  }
  scanGt[tid] = gt;
  scanEq[tid] = eq;
  __syncthreads();
  if (tid == 0) {
    u32 a = 0u, b = 0u;
    for (int i = 0; i < 256; ++i) {
      u32 g = scanGt[i], e = scanEq[i];
      scanGt[i] = a;
      scanEq[i] = b;
      a += g;
      b += e;
    }
  }
  __syncthreads();
  u32 gtBefore = scanGt[tid], eqBefore = scanEq[tid];
  int* outIdx = indices + row * (usize)k;
  float* outScore = scores + row * (usize)k;
  for (int i = begin; i < end; ++i) {
    float v = x[i];
    u32 key = mosa_key(v);
    if (key > prefix || (key == prefix && eqBefore < need)) {
      u32 pos = gtBefore + min(eqBefore, need);
      outIdx[pos] = i;
      outScore[pos] = 1.0f / (1.0f + expf(-v));
    }
    if (key > prefix) gtBefore++;
    else if (key == prefix) eqBefore++;
  }
}

// ---------------------------------------------------------------- tensor cores, 3xTF32
// Products on the tensor cores in float32 accuracy: each operand x is split into a TF32 part
// big = tf32(x) and the TF32 rest small = tf32(x - big), and a*b is accumulated (in float32) as
// small_a*big_b + big_a*small_b + big_a*big_b (the dropped small*small term is below float32
// rounding). The test emulator (MOSA_EMU) supplies its own mosa_tf32, mosa_mma, mosa_red2 and mosa_ex2.
#ifndef MOSA_EMU
__device__ __forceinline__ u32 mosa_tf32(float x) {
  u32 r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
  return r;
}
// c += a (16 x 8, row) * b (8 x 8, col): mma.sync.m16n8k8, TF32 inputs, float32 accumulation.
__device__ __forceinline__ void mosa_mma(float (&c)[4], const u32 (&a)[4], const u32 (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
// *p += a, p[1] += b as one 8-byte atomic reduction (sm_90).
__device__ __forceinline__ void mosa_red2(float* p, float a, float b) {
  asm volatile("red.global.v2.f32.add [%0], {%1, %2};" ::"l"(p), "f"(a), "f"(b) : "memory");
}
// 2^x in one MUFU.EX2: exp2f adds a subnormal-range rescale around it, and results below 2^-126
// (probabilities under 1e-38 of the row's largest) only flush to zero here.
__device__ __forceinline__ float mosa_ex2(float x) {
  float r;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
  return r;
}
#endif
__device__ __forceinline__ void mosa_split(float x, u32& big, u32& small) {
  big = mosa_tf32(x);
  small = mosa_tf32(x - __uint_as_float(big));
}
// c += a * b in 3xTF32 from the operands' split fragments (the small * small term dropped).
__device__ __forceinline__ void mosa_mma3(float (&c)[4], const u32 (&ab)[4], const u32 (&as)[4], const u32 (&bb)[2],
    const u32 (&bs)[2]) {
  mosa_mma(c, as, bb);
  mosa_mma(c, ab, bs);
  mosa_mma(c, ab, bb);
}

// One warp: acc[mi][ni] (16 x 8 tiles at rows 16 mi, columns 8 ni) += sum over k < KR of
// A(row, k) * B(col, k), operands read through fa / fb (shared memory). acc layout: the mma
// accumulator (lane g = lane / 4, t = lane % 4: rows g and g + 8, columns 2t and 2t + 1).
// U: the 8-deep steps' unroll factor (16: fully).
template <int MT, int NT, int U = MOSA_UNROLL, class FA, class FB>
__device__ __forceinline__ void mosa_warp_mma(float (&acc)[MT][NT][4], int KR, FA fa, FB fb) {
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
#pragma unroll U
  for (int k = 0; k < KR; k += 8) {
    u32 ab[MT][4], as[MT][4], bb[NT][2], bs[NT][2];
#pragma unroll
    for (int mi = 0; mi < MT; ++mi) {
      const int r = mi * 16 + g;
      mosa_split(fa(r, k + t), ab[mi][0], as[mi][0]);
      mosa_split(fa(r + 8, k + t), ab[mi][1], as[mi][1]);
      mosa_split(fa(r, k + t + 4), ab[mi][2], as[mi][2]);
      mosa_split(fa(r + 8, k + t + 4), ab[mi][3], as[mi][3]);
    }
#pragma unroll
    for (int ni = 0; ni < NT; ++ni) {
      const int c = ni * 8 + g;
      mosa_split(fb(c, k + t), bb[ni][0], bs[ni][0]);
      mosa_split(fb(c, k + t + 4), bb[ni][1], bs[ni][1]);
    }
#pragma unroll
    for (int mi = 0; mi < MT; ++mi)
#pragma unroll
      for (int ni = 0; ni < NT; ++ni) {
        mosa_mma3(acc[mi][ni], ab[mi], as[mi], bb[ni], bs[ni]);
      }
  }
}

// Writes a warp's accumulators to C (row stride ldc) at the warp's origin.
template <int MT, int NT>
__device__ __forceinline__ void mosa_warp_store(float* C, int ldc, const float (&acc)[MT][NT][4]) {
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int mi = 0; mi < MT; ++mi)
#pragma unroll
    for (int ni = 0; ni < NT; ++ni) {
      float* c = C + (mi * 16 + g) * ldc + ni * 8 + 2 * t;
      c[0] = acc[mi][ni][0];
      c[1] = acc[mi][ni][1];
      c[8 * ldc] = acc[mi][ni][2];
      c[8 * ldc + 1] = acc[mi][ni][3];
    }
}

// ---------------------------------------------------------------- GEMM building blocks
#if MOSA_SPLIT_STAGE
// Split staging: element (r, kk) of a GK-deep chunk is stored once as its TF32 halves (big,
// small) at mosa_split_at(r, kk): row r holds 2 GK words; for the 8-deep step s = kk / 8 and
// t = kk % 4 the 16-byte group (s, t) is {big, small of 8s + t, big, small of 8s + t + 4}, so one
// float4 load gives a fragment row's four registers. The groups are XOR-swizzled by row
// (mosa_swz; rows r and r + 8 alike): a quarter-warp's float4 loads (fragment rows g = 2i, 2i + 1,
// t = 0..3) and a half-warp's 8-byte stores along kk hit 32 distinct banks; stores along the rows
// (k-major sources) meet 2-way.
__device__ __forceinline__ int mosa_swz(int r) { return ((r & 1) << 2) | ((r >> 1) & 3); }
// The group of kk within its row before the swizzle (bits 0-1 and 3.. of kk; bit 2 picks the pair).
__device__ __forceinline__ int mosa_kgroup(int kk) { return ((kk >> 3) << 2) | (kk & 3); }
__device__ __forceinline__ int mosa_split_at(int r, int kk) {
  return r * (2 * GK) + ((mosa_kgroup(kk) ^ mosa_swz(r)) << 2) + ((kk >> 2) & 1) * 2;
}
// The warp's 3xTF32 product over one staged chunk: acc[mi][ni] += A rows (16 mi ..) x B rows
// (8 ni ..) over the chunk's GK steps; A and B point at the warp's first row (a multiple of 8).
template <int MT, int NT>
__device__ __forceinline__ void mosa_warp_mma_split(float (&acc)[MT][NT][4], const float* A, const float* B) {
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3, f = mosa_swz(g);
  const float* a0 = A + g * (2 * GK);
  const float* b0 = B + g * (2 * GK);
#pragma unroll
  for (int s = 0; s < GK / 8; ++s) {
    const int off = (((s << 2) | t) ^ f) << 2;
    u32 ab[MT][4], as[MT][4], bb[NT][2], bs[NT][2];
#pragma unroll
    for (int mi = 0; mi < MT; ++mi) {
      const float4 u = mosa_ld4(a0 + mi * 16 * (2 * GK) + off);
      const float4 l = mosa_ld4(a0 + (mi * 16 + 8) * (2 * GK) + off);
      ab[mi][0] = __float_as_uint(u.x);
      as[mi][0] = __float_as_uint(u.y);
      ab[mi][2] = __float_as_uint(u.z);
      as[mi][2] = __float_as_uint(u.w);
      ab[mi][1] = __float_as_uint(l.x);
      as[mi][1] = __float_as_uint(l.y);
      ab[mi][3] = __float_as_uint(l.z);
      as[mi][3] = __float_as_uint(l.w);
    }
#pragma unroll
    for (int ni = 0; ni < NT; ++ni) {
      const float4 v = mosa_ld4(b0 + ni * 8 * (2 * GK) + off);
      bb[ni][0] = __float_as_uint(v.x);
      bs[ni][0] = __float_as_uint(v.y);
      bb[ni][1] = __float_as_uint(v.z);
      bs[ni][1] = __float_as_uint(v.w);
    }
#pragma unroll
    for (int mi = 0; mi < MT; ++mi)
#pragma unroll
      for (int ni = 0; ni < NT; ++ni) {
        mosa_mma3(acc[mi][ni], ab[mi], as[mi], bb[ni], bs[ni]);
      }
  }
}
#endif
// A chunk of GK reduction steps for ROWS rows, fetched from global memory into registers (so
// the next chunk's loads overlap this chunk's arithmetic), then stored into shared memory. KFAST:
// consecutive threads walk the reduction index (coalesced when the source is contiguous along
// it) and S is row-major [ROWS][LDG]; otherwise they walk the rows and S is k-major
// [GK][ROWS + 8]. Both layouts give conflict-free mma fragment loads (mosa_stage_at).
template <int ROWS, bool KFAST>
struct MosaStage {
  static constexpr int N = ROWS * GK / 256;
  float v[N];
  template <class F>
  __device__ __forceinline__ void fetch(F f, int k0) {
#pragma unroll
    for (int n = 0; n < N; ++n) {
      const int e = threadIdx.x + 256 * n;
      const int r = KFAST ? e / GK : e % ROWS, kk = KFAST ? e % GK : e / ROWS;
      v[n] = f(r, k0 + kk);
    }
  }
#if MOSA_SPLIT_STAGE
  // Element n sits at mosa_split_at(r, kk) for e = tid + 256 n, written from one per-thread base:
  // KFAST: r = r0 + n (256 / GK) with kk = kk0, a row step of a multiple of 8 (GK <= 32), so the
  // swizzle stays r0's: base + n (256 / GK) 2 GK. k-major: r = r0 with kk = kk0 + n (256 / ROWS),
  // kk0 below that power-of-two step, so kk's bits are kk0's and the step's apart: its group is
  // kgroup(kk0) ^ kgroup(step n) and its pair bit either one's.
  __device__ __forceinline__ void store(float* S) const {
    static_assert(KFAST ? (GK % 16 == 0 && GK <= 32) : (256 % ROWS == 0 && ROWS % 8 == 0), "split staging layout");
    const int tid = threadIdx.x;
    const int r0 = KFAST ? tid / GK : tid % ROWS, kk0 = KFAST ? tid % GK : tid / ROWS;
    float* const p = S + (KFAST ? mosa_split_at(r0, kk0) : r0 * (2 * GK) + ((kk0 >> 2) & 1) * 2);
    const int x4 = (mosa_kgroup(kk0) ^ mosa_swz(r0)) << 2;
#pragma unroll
    for (int n = 0; n < N; ++n) {
      u32 big, small;
      mosa_split(v[n], big, small);
      float2 pair;
      pair.x = __uint_as_float(big);
      pair.y = __uint_as_float(small);
      constexpr int STEP = 256 / ROWS;
      float* at = KFAST ? p + n * (256 / GK) * (2 * GK)
                        : p + (x4 ^ (mosa_kgroup(n * STEP) << 2)) + ((n * STEP >> 2) & 1) * 2;
      *reinterpret_cast<float2*>(at) = pair;
    }
  }
#else
  __device__ __forceinline__ void store(float* S) const {
#pragma unroll
    for (int n = 0; n < N; ++n) {
      const int e = threadIdx.x + 256 * n;
      const int r = KFAST ? e / GK : e % ROWS, kk = KFAST ? e % GK : e / ROWS;
      S[KFAST ? r * LDG + kk : kk * (ROWS + 8) + r] = v[n];
    }
  }
#endif
};

template <int ROWS, bool KFAST>
__device__ __forceinline__ float mosa_stage_at(const float* S, int r, int kk) {
  return S[KFAST ? r * LDG + kk : kk * (ROWS + 8) + r];
}

// acc[TM][TN_] = A[BM rows][n] . B[16 TN_ rows][n] summed over n < N, both operands given
// element-wise by fa(row, n) and fb(row, n) (zero outside); KA / KB: which index is contiguous.
// prep(k0), called by every thread a barrier before chunk k0 is fetched, may fill shared tables
// the fetch reads (double-buffered by chunk parity).
// Thread (ty, tx) gets rows ty*TM + i and columns tx + 16 j. The block's 8 warps multiply on the
// tensor cores (3xTF32, warp tile 32 x 8 TN_: 4 warps along the rows, 2 along the columns), then
// the tile goes through shared memory into the thread layout above. Dynamic shared memory:
// mosaCudaSharedBytes.
template <int TN_, bool KA, bool KB, class FA, class FB, class FP>
__device__ __forceinline__ void mosa_gemm(float (&acc)[TM][TN_], int N, FA fa, FB fb, FP prep) {
  constexpr int BR = 16 * TN_;
#if MOSA_SPLIT_STAGE
  constexpr int SA = BM * 2 * GK;
#else
  constexpr int SA = KA ? BM * LDG : GK * (BM + 8);
#endif
  MOSA_DYNAMIC_SMEM(mosa_gemm_smem);
  float* As = reinterpret_cast<float*>(mosa_gemm_smem);
  float* Bs = As + SA;
  const int w = threadIdx.x >> 5, wm = (w & 3) * 32, wn = (w >> 2) * (BR / 2);
  float c[2][TN_][4];
#pragma unroll
  for (int mi = 0; mi < 2; ++mi)
#pragma unroll
    for (int ni = 0; ni < TN_; ++ni)
#pragma unroll
      for (int e = 0; e < 4; ++e) c[mi][ni][e] = 0.0f;
  MosaStage<BM, KA> sa;
  MosaStage<BR, KB> sb;
  prep(0);
  __syncthreads();
  sa.fetch(fa, 0);
  sb.fetch(fb, 0);
  for (int k0 = 0; k0 < N; k0 += GK) {
    __syncthreads();
    sa.store(As);
    sb.store(Bs);
    if (k0 + GK < N) prep(k0 + GK);
    __syncthreads();
    if (k0 + GK < N) {
      sa.fetch(fa, k0 + GK);
      sb.fetch(fb, k0 + GK);
    }
#if MOSA_SPLIT_STAGE
    mosa_warp_mma_split<2, TN_>(c, As + wm * (2 * GK), Bs + wn * (2 * GK));
#else
    mosa_warp_mma<2, TN_>(
        c, GK, [&](int r, int k) { return mosa_stage_at<BM, KA>(As, wm + r, k); },
        [&](int n, int k) { return mosa_stage_at<BR, KB>(Bs, wn + n, k); });
#endif
  }
  __syncthreads();
  float* Cs = As;
  mosa_warp_store<2, TN_>(Cs + wm * (BR + 4) + wn, BR + 4, c);
  __syncthreads();
  const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN_; ++j) acc[i][j] = Cs[(ty * TM + i) * (BR + 4) + tx + 16 * j];
}

// Grid (ceil(K/BM), 3*Hs, B): rows i0.. of q, k or v for head h; thread rows ty*TM + m, columns tx + 16 j.
extern "C" __global__ void MOSA_GEMM_BOUNDS mosa_project(const float* __restrict__ x,
    const int* __restrict__ indices, const float* __restrict__ wq, const float* __restrict__ wk,
    const float* __restrict__ wv, float* __restrict__ q, float* __restrict__ k, float* __restrict__ v,
    int T, int C, int Hs, int K, float ropeBase) {
  __shared__ int rows[BM];
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int i0 = blockIdx.x * BM;
  const int which = blockIdx.y % 3, h = blockIdx.y / 3, b = blockIdx.z;
  const float* W = (which == 0 ? wq : which == 1 ? wk : wv) + (usize)h * D * C;
  float* out = which == 0 ? q : which == 1 ? k : v;
  const usize bh = (usize)b * Hs + h;
  const int* idx = indices + bh * K;
  if (tid < BM) rows[tid] = i0 + tid < K ? b * T + idx[i0 + tid] : -1;
  __syncthreads();
  float acc[TM][TN];
  mosa_gemm<TN, true, true>(
      acc, C,
      [&](int r, int c) { const int row = rows[r]; return row >= 0 && c < C ? x[(usize)row * C + c] : 0.0f; },
      [&](int n, int c) { return c < C ? W[(usize)n * C + c] : 0.0f; },
      [](int) {});
  const bool rotate = which < 2 && ropeBase > 0.0f;
#pragma unroll
  for (int m = 0; m < TM; ++m) {
    const int i = i0 + ty * TM + m;
    if (i >= K) continue;
    float* o = out + (bh * K + i) * D;
    if (rotate) {
      const double pos = (double)idx[i];
#pragma unroll
      for (int j = 0; j < TN / 2; ++j) {
        const int n = tx + 16 * j;
        double s, c;
        sincos(pos * pow((double)ropeBase, -2.0 * n / D), &s, &c);
        const float x1 = acc[m][j], x2 = acc[m][j + TN / 2];
        o[n] = x1 * (float)c - x2 * (float)s;
        o[n + D / 2] = x2 * (float)c + x1 * (float)s;
      }
    } else {
#pragma unroll
      for (int j = 0; j < TN; ++j) o[tx + 16 * j] = acc[m][j];
    }
  }
}

// Grid (ceil(K/BM), ceil(C/BN), B*Hs): y[rows, c0..] += score * (out x Wo_h^T).
extern "C" __global__ void MOSA_GEMM_BOUNDS mosa_out_scatter(const float* __restrict__ o,
    const float* __restrict__ scores, const int* __restrict__ indices, const float* __restrict__ wo,
    float* __restrict__ y, int T, int C, int Hs, int K) {
  __shared__ int rows[BM];
  __shared__ float sc[BM];
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int i0 = blockIdx.x * BM, c0 = blockIdx.y * BN;
  const usize bh = blockIdx.z;
  const int b = (int)(bh / Hs), h = (int)(bh % Hs);
  if (tid < BM) {
    const bool ok = i0 + tid < K;
    rows[tid] = ok ? b * T + indices[bh * K + i0 + tid] : -1;
    sc[tid] = ok ? scores[bh * K + i0 + tid] : 0.0f;
  }
  const float* ob = o + (bh * K + i0) * D;
  const int rowsLeft = K - i0;
  float acc[TM][BN / 16];
  mosa_gemm<BN / 16, true, true>(
      acc, D, [&](int r, int d) { return r < rowsLeft ? ob[(usize)r * D + d] : 0.0f; },
      [&](int n, int d) { return c0 + n < C ? wo[(usize)(c0 + n) * Hs * D + h * D + d] : 0.0f; },
      [](int) {});
#pragma unroll
  for (int m = 0; m < TM; ++m) {
    const int row = rows[ty * TM + m];
    if (row < 0) continue;
    const float s = sc[ty * TM + m];
#pragma unroll
    for (int j = 0; j < BN / 16; ++j) {
      const int c = c0 + tx + 16 * j;
      if (c < C) atomicAdd(&y[(usize)row * C + c], acc[m][j] * s);
    }
  }
}

// Grid (ceil(K/BM), Hs, B): dz = dy[rows] x Wo_h; dout = score * dz; dscore = dz . out.
extern "C" __global__ void MOSA_GEMM_BOUNDS mosa_out_backward(const float* __restrict__ dy,
    const float* __restrict__ o, const float* __restrict__ scores, const int* __restrict__ indices,
    const float* __restrict__ wo, float* __restrict__ dout, float* __restrict__ dscores, int T, int C,
    int Hs, int K) {
  __shared__ int rows[BM];
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int i0 = blockIdx.x * BM;
  const int h = blockIdx.y, b = blockIdx.z;
  const usize bh = (usize)b * Hs + h;
  if (tid < BM) rows[tid] = i0 + tid < K ? b * T + indices[bh * K + i0 + tid] : -1;
  __syncthreads();
  float acc[TM][TN];
  mosa_gemm<TN, true, false>(
      acc, C,
      [&](int r, int c) { const int row = rows[r]; return row >= 0 && c < C ? dy[(usize)row * C + c] : 0.0f; },
      [&](int n, int c) { return c < C ? wo[(usize)c * Hs * D + h * D + n] : 0.0f; },
      [](int) {});
#pragma unroll
  for (int m = 0; m < TM; ++m) {
    const int i = i0 + ty * TM + m;
    const bool ok = i < K;
    const float s = ok ? scores[bh * K + i] : 0.0f;
    float part = 0.0f;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const usize at = (bh * K + (ok ? i : 0)) * D + tx + 16 * j;
      if (ok) {
        part = fmaf(acc[m][j], o[at], part);
        dout[at] = acc[m][j] * s;
      }
    }
    part = mosa_sum16(part);
    if (ok && tx == 0) dscores[bh * K + i] = part;
  }
}

// Grid (ceil(K/BM), ceil(C/BN), B*Hs): dx[rows] += [gq | gk | gv] x [Wq_h; Wk_h; Wv_h].
extern "C" __global__ void MOSA_GEMM_BOUNDS mosa_project_backward_input(const float* __restrict__ gq,
    const float* __restrict__ gk, const float* __restrict__ gv, const int* __restrict__ indices,
    const float* __restrict__ wq, const float* __restrict__ wk, const float* __restrict__ wv,
    float* __restrict__ dx, int T, int C, int Hs, int K) {
  __shared__ int rows[BM];
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int i0 = blockIdx.x * BM, c0 = blockIdx.y * BN;
  const usize bh = blockIdx.z;
  const int b = (int)(bh / Hs), h = (int)(bh % Hs);
  if (tid < BM) rows[tid] = i0 + tid < K ? b * T + indices[bh * K + i0 + tid] : -1;
  const usize g0 = (bh * K + i0) * D;
  const int rowsLeft = K - i0;
  float acc[TM][BN / 16];
  mosa_gemm<BN / 16, true, false>(
      acc, 3 * D,
      [&](int r, int e) {
        const float* G = e < D ? gq : e < 2 * D ? gk : gv;
        return r < rowsLeft ? G[g0 + (usize)r * D + e % D] : 0.0f;
      },
      [&](int n, int e) {
        const float* W = e < D ? wq : e < 2 * D ? wk : wv;
        return c0 + n < C ? W[(usize)(h * D + e % D) * C + c0 + n] : 0.0f;
      },
      [](int) {});
#pragma unroll
  for (int m = 0; m < TM; ++m) {
    const int row = rows[ty * TM + m];
    if (row < 0) continue;
#pragma unroll
    for (int j = 0; j < BN / 16; ++j) {
      const int c = c0 + tx + 16 * j;
      if (c < C) atomicAdd(&dx[(usize)row * C + c], acc[m][j]);
    }
  }
}

// Row tables of the weight gradients' reduction (B*K selected rows r, chunk by chunk, double-
// buffered): the gathered row b*T + index, the row of the [B, Hs, K] head slab, and its score.
struct MosaRowTable {
  int row[2][GK];
  int at[2][GK];
  float score[2][GK];
};
__device__ __forceinline__ void mosa_row_table(MosaRowTable& t, const int* indices, const float* scores, int k0,
    int R, int K, int T, int Hs, int h) {
  const int j = threadIdx.x, slot = (k0 / GK) & 1;
  if (j >= GK) return;
  const int r = k0 + j;
  if (r < R) {
    const int b = r / K, i = r - b * K;
    const int at = (b * Hs + h) * K + i;
    t.row[slot][j] = b * T + indices[at];
    t.at[slot][j] = at;
    t.score[slot][j] = scores ? scores[at] : 1.0f;
  } else {
    t.row[slot][j] = -1;
    t.at[slot][j] = 0;
    t.score[slot][j] = 0.0f;
  }
}

// A weight gradient's reduction over the B*K selected rows of head h: acc[m][j] (thread layout of
// mosa_gemm) = sum_r src[row r, c0 + m] * fb(p, at r, score r), the gathered source rows through
// the double-buffered row tables (scores null: the tables' scores are 1).
template <class FB>
__device__ __forceinline__ void mosa_weight_grad(float (&acc)[TM][TN], MosaRowTable& tab, const float* src,
    const int* indices, const float* scores, int c0, int T, int C, int Hs, int K, int B, int h, FB fb) {
  const int R = B * K;
  mosa_gemm<TN, false, false>(
      acc, R,
      [&](int m, int r) {
        const int row = tab.row[(r / GK) & 1][r % GK];
        return row >= 0 && c0 + m < C ? src[(usize)row * C + c0 + m] : 0.0f;
      },
      [&](int p, int r) {
        const int slot = (r / GK) & 1, j = r % GK;
        return tab.row[slot][j] >= 0 ? fb(p, tab.at[slot][j], tab.score[slot][j]) : 0.0f;
      },
      [&](int k0) { mosa_row_table(tab, indices, scores, k0, R, K, T, Hs, h); });
}

// Grid (ceil(C/BM), 1, 3*Hs): dW[h*D + p, c] = sum over the B*K selected rows r of g[r, p] * x[row r, c],
// one block per BM columns c (thread rows) and every p (thread columns).
extern "C" __global__ void MOSA_GEMM_BOUNDS mosa_weight_grad_qkv(const float* __restrict__ gq,
    const float* __restrict__ gk, const float* __restrict__ gv, const float* __restrict__ x,
    const int* __restrict__ indices, float* __restrict__ dwq, float* __restrict__ dwk,
    float* __restrict__ dwv, int T, int C, int Hs, int K, int B) {
  __shared__ MosaRowTable tab;
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int which = blockIdx.z % 3, h = blockIdx.z / 3;
  const float* G = which == 0 ? gq : which == 1 ? gk : gv;
  float* out = which == 0 ? dwq : which == 1 ? dwk : dwv;
  const int c0 = blockIdx.x * BM;
  float acc[TM][TN];
  mosa_weight_grad(acc, tab, x, indices, nullptr, c0, T, C, Hs, K, B, h,
                   [&](int p, int at, float) { return G[(usize)at * D + p]; });
#pragma unroll
  for (int m = 0; m < TM; ++m) {
    const int c = c0 + ty * TM + m;
    if (c >= C) continue;
#pragma unroll
    for (int j = 0; j < TN; ++j) out[(usize)(h * D + tx + 16 * j) * C + c] = acc[m][j];
  }
}

// Grid (ceil(C/BM), 1, Hs): dWo[c, h*D + p] = sum_r dy[row r, c] * score_r * out[r, p].
extern "C" __global__ void MOSA_GEMM_BOUNDS mosa_weight_grad_out(const float* __restrict__ o,
    const float* __restrict__ scores, const float* __restrict__ dy, const int* __restrict__ indices,
    float* __restrict__ dwo, int T, int C, int Hs, int K, int B) {
  __shared__ MosaRowTable tab;
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int h = blockIdx.z;
  const int c0 = blockIdx.x * BM;
  float acc[TM][TN];
  mosa_weight_grad(acc, tab, dy, indices, scores, c0, T, C, Hs, K, B, h,
                   [&](int p, int at, float score) { return score * o[(usize)at * D + p]; });
#pragma unroll
  for (int m = 0; m < TM; ++m) {
    const int c = c0 + ty * TM + m;
    if (c >= C) continue;
#pragma unroll
    for (int j = 0; j < TN; ++j) dwo[(usize)c * Hs * D + h * D + tx + 16 * j] = acc[m][j];
  }
}

// ---------------------------------------------------------------- attention among the K tokens
// Rows r0.. of a [K, D] slab into S[AB][LDH] (zeros past K), times mul. Each thread's float4
// loads are issued together (a compile-time count, predicated) before any is stored, so one
// memory round trip covers the tile, not one per load.
#define MOSA_ROW_LOADS (AB * (D / 4) / 256)
__device__ __forceinline__ void mosa_rows_fetch(float4 (&v)[MOSA_ROW_LOADS], const float* src, int r0, int K) {
#pragma unroll
  for (int n = 0; n < MOSA_ROW_LOADS; ++n) {
    const int e = threadIdx.x + 256 * n, r = e / (D / 4), c = (e % (D / 4)) * 4;
    v[n] = r0 + r < K ? mosa_ld4(src + (usize)(r0 + r) * D + c) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  }
}
__device__ __forceinline__ void mosa_rows_store(float* S, const float4 (&v)[MOSA_ROW_LOADS], float mul) {
#pragma unroll
  for (int n = 0; n < MOSA_ROW_LOADS; ++n) {
    const int e = threadIdx.x + 256 * n, r = e / (D / 4), c = (e % (D / 4)) * 4;
    mosa_st4(S + r * LDH + c, make_float4(v[n].x * mul, v[n].y * mul, v[n].z * mul, v[n].w * mul));
  }
}
#if MOSA_BATCHED_ROWS
__device__ __forceinline__ void mosa_rows_load(float* S, const float* src, int r0, int K, float mul) {
  float4 v[MOSA_ROW_LOADS];
  mosa_rows_fetch(v, src, r0, K);
  mosa_rows_store(S, v, mul);
}
// Two slabs' rows at once (both tiles' loads in flight together).
__device__ __forceinline__ void mosa_rows_load2(float* S1, const float* src1, float* S2, const float* src2, int r0,
    int K) {
  float4 a[MOSA_ROW_LOADS], b[MOSA_ROW_LOADS];
  mosa_rows_fetch(a, src1, r0, K);
  mosa_rows_fetch(b, src2, r0, K);
  mosa_rows_store(S1, a, 1.0f);
  mosa_rows_store(S2, b, 1.0f);
}
#else
// The earlier loader (kept for the bench's A/B): a strided loop the compiler does not unroll
// cleanly, one load's round trip before the next.
__device__ __forceinline__ void mosa_rows_load(float* S, const float* src, int r0, int K, float mul) {
  for (int e = threadIdx.x; e < AB * (D / 4); e += 256) {
    const int r = e / (D / 4), c = (e % (D / 4)) * 4;
    float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (r0 + r < K) {
      v = mosa_ld4(src + (usize)(r0 + r) * D + c);
      v.x *= mul;
      v.y *= mul;
      v.z *= mul;
      v.w *= mul;
    }
    mosa_st4(S + r * LDH + c, v);
  }
}
__device__ __forceinline__ void mosa_rows_load2(float* S1, const float* src1, float* S2, const float* src2, int r0,
    int K) {
  mosa_rows_load(S1, src1, r0, K, 1.0f);
  mosa_rows_load(S2, src2, r0, K, 1.0f);
}
#endif

// S[64][LDA] = A[64 rows][d] . B[64 rows][d] over d < D (rows of stride LDH) on the tensor cores;
// with a second pair into S2 when TWO. Warp tile 16 x 32 (4 warps along the rows, 2 along the columns).
template <bool TWO, int U = MOSA_UNROLL>
__device__ __forceinline__ void mosa_tile_scores(float* S, const float* A, const float* Bm, float* S2,
    const float* A2, const float* B2) {
  const int w = threadIdx.x >> 5, wr = (w & 3) * 16, wc = (w >> 2) * 32;
  float c[1][4][4];
#pragma unroll
  for (int ni = 0; ni < 4; ++ni)
#pragma unroll
    for (int e = 0; e < 4; ++e) c[0][ni][e] = 0.0f;
  mosa_warp_mma<1, 4, U>(
      c, D, [&](int r, int k) { return A[(wr + r) * LDH + k]; }, [&](int n, int k) { return Bm[(wc + n) * LDH + k]; });
  mosa_warp_store<1, 4>(S + wr * LDA + wc, LDA, c);
  if (TWO) {
#pragma unroll
    for (int ni = 0; ni < 4; ++ni)
#pragma unroll
      for (int e = 0; e < 4; ++e) c[0][ni][e] = 0.0f;
    mosa_warp_mma<1, 4, U>(
        c, D, [&](int r, int k) { return A2[(wr + r) * LDH + k]; }, [&](int n, int k) { return B2[(wc + n) * LDH + k]; });
    mosa_warp_store<1, 4>(S2 + wr * LDA + wc, LDA, c);
  }
}

// acc (the warp's 16 x D/2 tile at rows 16 (w % 4), columns (D/2)(w / 4)) += P[rows][c] . V[c][cols]
// over c < AB: P [AB][LDA] row-major, V [AB][LDH] row-major.
template <int U = MOSA_UNROLL>
__device__ __forceinline__ void mosa_tile_pv(float (&acc)[1][TN][4], const float* P, const float* V) {
  const int w = threadIdx.x >> 5, wr = (w & 3) * 16, wc = (w >> 2) * (D / 2);
  mosa_warp_mma<1, TN, U>(
      acc, AB, [&](int r, int c) { return P[(wr + r) * LDA + c]; }, [&](int n, int c) { return V[c * LDH + wc + n]; });
}

__device__ __forceinline__ void mosa_zero(float (&acc)[1][TN][4]) {
#pragma unroll
  for (int ni = 0; ni < TN; ++ni)
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[0][ni][e] = 0.0f;
}

// Writes the warp's 16 x D/2 tile (mosa_tile_pv layout) times mul into rows r0.. of a [K, D] slab;
// rowMul: an extra factor per tile row (or null).
__device__ __forceinline__ void mosa_tile_write(float* dst, const float (&acc)[1][TN][4], int r0, int K, float mul,
    const float* rowMul) {
  const int w = threadIdx.x >> 5, wr = (w & 3) * 16, wc = (w >> 2) * (D / 2);
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int row = wr + g + 8 * h;
    if (r0 + row >= K) continue;
    const float f = rowMul ? mul * rowMul[row] : mul;
    float* d = dst + (usize)(r0 + row) * D + wc + 2 * t;
#pragma unroll
    for (int ni = 0; ni < TN; ++ni) {
      d[ni * 8] = acc[0][ni][2 * h] * f;
      d[ni * 8 + 1] = acc[0][ni][2 * h + 1] * f;
    }
  }
}

// Query tile qt of head (blockIdx.y, blockIdx.z) against key tiles [t0, t1). Query i sees key
// j <= i (positions ascend with the slot). Scores and P.V on the tensor cores (3xTF32); the online
// softmax per thread: queries ty*4 + i, keys tx + 16 j. PART: writes the unnormalised output and
// the running max and sum of rows to slab "part" of opart / mpart / lpart (for mosa_attend_combine);
// otherwise the normalised output and log-sum-exp.
template <bool PART>
__device__ __forceinline__ void mosa_attend_tile(float* smem, int qt, int t0, int t1, int part,
    const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
    float* __restrict__ out, float* __restrict__ lse, float* __restrict__ opart, float* __restrict__ mpart,
    float* __restrict__ lpart, int K, int Hs, float scale) {
  float* Qs = smem;
  float* Ks = Qs + AB * LDH;
  float* Vs = Ks + AB * LDH;
  float* Ss = Vs + AB * LDH;
  __shared__ float alphaS[AB];
  __shared__ float lS[AB];
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int q0 = qt * AB;
  const usize bh = (usize)blockIdx.z * Hs + blockIdx.y;
  const usize base = bh * K * D;
  const int w = tid >> 5, wr = (w & 3) * 16, g = (tid & 31) >> 2;
  mosa_rows_load(Qs, q + base, q0, K, scale);
  float mrow[4], lrow[4], o[1][TN][4];
  mosa_zero(o);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    mrow[i] = -INFINITY;
    lrow[i] = 0.0f;
  }
  for (int kt = t0; kt < t1; ++kt) {
    const int k0 = kt * AB;
    __syncthreads();
    mosa_rows_load2(Ks, k + base, Vs, v + base, k0, K);
    __syncthreads();
    mosa_tile_scores<false>(Ss, Qs, Ks, nullptr, nullptr, nullptr);
    __syncthreads();
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int r = ty * 4 + i, qi = q0 + r;
      float s[4];
      float mx = -INFINITY;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int kj = k0 + tx + 16 * j;
        s[j] = Ss[r * LDA + tx + 16 * j];
        if (kj > qi || kj >= K) s[j] = -INFINITY;
        mx = fmaxf(mx, s[j]);
      }
      mx = mosa_max16(mx);
      const float mnew = fmaxf(mrow[i], mx);
      const float alpha = mrow[i] == -INFINITY ? 0.0f : expf(mrow[i] - mnew);
      float sum = 0.0f;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const float p = s[j] == -INFINITY ? 0.0f : expf(s[j] - mnew);
        Ss[r * LDA + tx + 16 * j] = p;
        sum += p;
      }
      sum = mosa_sum16(sum);
      lrow[i] = lrow[i] * alpha + sum;
      mrow[i] = mnew;
      if (tx == 0) alphaS[r] = alpha;
    }
    __syncthreads();
    const float a0 = alphaS[wr + g], a1 = alphaS[wr + g + 8];
#pragma unroll
    for (int ni = 0; ni < TN; ++ni) {
      o[0][ni][0] *= a0;
      o[0][ni][1] *= a0;
      o[0][ni][2] *= a1;
      o[0][ni][3] *= a1;
    }
    mosa_tile_pv(o, Ss, Vs);
  }
  const usize rows = (usize)gridDim.z * Hs * K;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int r = ty * 4 + i, qi = q0 + r;
    if (tx == 0) {
      lS[r] = 1.0f / lrow[i];
      if (qi < K) {
        if (PART) {
          mpart[part * rows + bh * K + qi] = mrow[i];
          lpart[part * rows + bh * K + qi] = lrow[i];
        } else {
          lse[bh * K + qi] = mrow[i] + logf(lrow[i]);
        }
      }
    }
  }
  __syncthreads();
  if (PART) mosa_tile_write(opart + (part * rows + bh * K) * D, o, q0, K, 1.0f, nullptr);
  else mosa_tile_write(out + base, o, q0, K, 1.0f, lS);
}

// ---------------------------------------------------------------- forward attention in registers
// FlashAttention-2 order (MOSA_REGISTER_ATTEND): 4 warps, each owning FMT m-tiles of 16 query rows
// (FQ = 64 FMT rows per block) for the whole key loop. S and the output stay in mma accumulators
// and the online softmax runs on them, so no score tile goes through shared memory. Two m-tiles
// per warp (D <= 64) make every K and V fragment loaded from shared memory feed two rows of mma:
// with one, the fragment loads alone would take about as much shared-memory bandwidth as the
// tensor cores take time. K and V come in tiles of FKT keys, split into TF32 halves once when
// staged (for the 4 warps together), in fragment order: one 16-byte load gives a lane both halves
// of a B fragment, in the registers mma takes them. Q is kept unsplit in shared memory (the
// registers could not hold it) and split at each use, which costs ALU issue slots, not bandwidth.
#define FMT (D <= 64 ? 2 : 1)
#define FQ (64 * FMT)
#define FKN (FKT / 8)
#define FSTEPS (D / 8)
// Staging units of 8 floats per thread and tile, K and V alike (FKT * D / 8 units over 128 threads).
#define FUNITS (FKT * D / 1024)
#define MOSA_FA_BOUNDS __launch_bounds__(128, MOSA_FA_BLOCKS)

// Where lane l's float4 sits in a 32-float4 fragment block b. A warp's fragment load (32 float4
// at once) is conflict-free under any permutation within aligned groups of 8; the XOR terms also
// make the staging stores conflict-free: 8 threads storing the 8 keys g of one K block (lanes
// 4g + t, one t per store) or the 4 key pairs t of two V blocks of opposite parity (one g per
// store) land on 8 distinct 16-byte bank groups.
__device__ __forceinline__ int mosa_fpos(int l, int b) { return l ^ ((l >> 3) & 3) ^ ((b & 1) << 2); }
__device__ __forceinline__ float4 mosa_fsplit4(float x0, float x1) {
  u32 b0, s0, b1, s1;
  mosa_split(x0, b0, s0);
  mosa_split(x1, b1, s1);
  return make_float4(__uint_as_float(b0), __uint_as_float(b1), __uint_as_float(s0), __uint_as_float(s1));
}

// K tile rows k0.. (zeros past K) into registers: unit u = tid + 128 n is key 8 ni + g at dims
// 8 s .. 8 s + 7 (g = u % 8, ni = u / 8 % FKN, s = u / 8 / FKN), two 16-byte loads (one sector).
// Unit n is unit 0's key, 16 n / FKN steps s further.
__device__ __forceinline__ void mosa_fa_fetch_k(float4 (&r)[FUNITS][2], const float* src, int k0, int K) {
  const int u = threadIdx.x, key = k0 + 8 * ((u >> 3) % FKN) + (u & 7);
  const float* p = src + (usize)key * D + 8 * ((u >> 3) / FKN);
  const bool in = key < K;
  const float4 z = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
  for (int n = 0; n < FUNITS; ++n) {
    r[n][0] = in ? mosa_ld4(p + n * (128 / FKN)) : z;
    r[n][1] = in ? mosa_ld4(p + n * (128 / FKN) + 4) : z;
  }
}
// The B fragments of S = Q K^T: block ni * FSTEPS + s holds, for lane (g, t), the TF32 halves of
// K[8 ni + g][8 s + t] and K[8 ni + g][8 s + t + 4] as {big, big, small, small}. Lanes 4g .. 4g + 3
// sit at float4 positions p ^ t (p = mosa_fpos(4g, b)), so a unit's four stores are one offset
// XOR constants (unit n: 16 n / FKN blocks further, same parity).
__device__ __forceinline__ void mosa_fa_store_k(float* Ks, const float4 (&r)[FUNITS][2]) {
  const int u = threadIdx.x, b = ((u >> 3) % FKN) * FSTEPS + (u >> 3) / FKN;
  const int off = 4 * (b * 32 + mosa_fpos(4 * (u & 7), b));
#pragma unroll
  for (int n = 0; n < FUNITS; ++n) {
    float* blk = Ks + n * (16 / FKN * 128);
    mosa_st4(blk + off, mosa_fsplit4(r[n][0].x, r[n][1].x));
    mosa_st4(blk + (off ^ 4), mosa_fsplit4(r[n][0].y, r[n][1].y));
    mosa_st4(blk + (off ^ 8), mosa_fsplit4(r[n][0].z, r[n][1].z));
    mosa_st4(blk + (off ^ 12), mosa_fsplit4(r[n][0].w, r[n][1].w));
  }
}
// V tile: unit u is the key pair 8 kk + 2t, + 1 at dims 8 nd + 4 h .. + 3 (t = u % 4,
// nd = 2 (u / 16 / FKN) + u / 4 % 2, h = u / 8 % 2, kk = u / 16 % FKN). Unit n is unit 0's keys,
// 16 n / FKN steps nd further.
__device__ __forceinline__ void mosa_fa_fetch_v(float4 (&r)[FUNITS][2], const float* src, int k0, int K) {
  const int u = threadIdx.x, key = k0 + 8 * ((u >> 4) % FKN) + 2 * (u & 3);
  const int col = 16 * ((u >> 4) / FKN) + 8 * ((u >> 2) & 1) + 4 * ((u >> 3) & 1);
  const float* p = src + (usize)key * D + col;
  const bool in0 = key < K, in1 = key + 1 < K;
  const float4 z = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
  for (int n = 0; n < FUNITS; ++n) {
    r[n][0] = in0 ? mosa_ld4(p + n * (128 / FKN)) : z;
    r[n][1] = in1 ? mosa_ld4(p + n * (128 / FKN) + D) : z;
  }
}
// The B fragments of O += P V, with each 8-key step's keys permuted so that P comes straight from
// the S accumulator (see mosa_fa_pv): block kk * FSTEPS + nd holds, for lane (g, t), the halves of
// V[8 kk + 2t][8 nd + g] and V[8 kk + 2t + 1][8 nd + g] as {big, big, small, small}. A unit's
// lanes g = 4h + i (i = 0..3) sit at mosa_fpos(4g + t, b) = mosa_fpos(16h + t, b) ^ (4i + i / 2).
__device__ __forceinline__ void mosa_fa_store_v(float* Vs, const float4 (&r)[FUNITS][2]) {
  const int u = threadIdx.x, b = ((u >> 4) % FKN) * FSTEPS + 2 * ((u >> 4) / FKN) + ((u >> 2) & 1);
  const int off = 4 * (b * 32 + mosa_fpos(16 * ((u >> 3) & 1) + (u & 3), b));
#pragma unroll
  for (int n = 0; n < FUNITS; ++n) {
    float* blk = Vs + n * (16 / FKN * 128);
    mosa_st4(blk + off, mosa_fsplit4(r[n][0].x, r[n][1].x));
    mosa_st4(blk + (off ^ 16), mosa_fsplit4(r[n][0].y, r[n][1].y));
    mosa_st4(blk + (off ^ 36), mosa_fsplit4(r[n][0].z, r[n][1].z));
    mosa_st4(blk + (off ^ 52), mosa_fsplit4(r[n][0].w, r[n][1].w));
  }
}

// s[mi][ni] = the warp's Q rows (m-tile mi) . the tile's keys 8 ni .. 8 ni + 7 (accumulator layout:
// rows g, g + 8, keys 2t, 2t + 1). Qw: the warp's Q in A-fragment order (see mosa_fa_tile), split
// (MOSA_FA_SPLIT_Q) or to split here; pe: the lane's position in an even fragment block (odd: pe ^ 4).
__device__ __forceinline__ void mosa_fa_scores(float (&s)[FMT][FKN][4], const float* Qw, const float* Ks, int lane,
    int pe) {
#pragma unroll
  for (int mi = 0; mi < FMT; ++mi)
#pragma unroll
    for (int ni = 0; ni < FKN; ++ni)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[mi][ni][e] = 0.0f;
#pragma unroll
  for (int st = 0; st < FSTEPS; ++st) {
    u32 ab[FMT][4], as[FMT][4];
#pragma unroll
    for (int mi = 0; mi < FMT; ++mi) {
#if MOSA_FA_SPLIT_Q
      const float4 hi = mosa_ld4(Qw + 4 * ((2 * (mi * FSTEPS + st)) * 32 + lane));
      const float4 lo = mosa_ld4(Qw + 4 * ((2 * (mi * FSTEPS + st) + 1) * 32 + lane));
      ab[mi][0] = __float_as_uint(hi.x);
      ab[mi][1] = __float_as_uint(hi.y);
      ab[mi][2] = __float_as_uint(hi.z);
      ab[mi][3] = __float_as_uint(hi.w);
      as[mi][0] = __float_as_uint(lo.x);
      as[mi][1] = __float_as_uint(lo.y);
      as[mi][2] = __float_as_uint(lo.z);
      as[mi][3] = __float_as_uint(lo.w);
#else
      const float4 a = mosa_ld4(Qw + 4 * ((mi * FSTEPS + st) * 32 + lane));
      mosa_split(a.x, ab[mi][0], as[mi][0]);
      mosa_split(a.y, ab[mi][1], as[mi][1]);
      mosa_split(a.z, ab[mi][2], as[mi][2]);
      mosa_split(a.w, ab[mi][3], as[mi][3]);
#endif
    }
#pragma unroll
    for (int ni = 0; ni < FKN; ++ni) {
      const int b = ni * FSTEPS + st;
      const float4 v = mosa_ld4(Ks + 4 * (b * 32 + (pe ^ ((b & 1) << 2))));
      const u32 bb[2] = {__float_as_uint(v.x), __float_as_uint(v.y)};
      const u32 bs[2] = {__float_as_uint(v.z), __float_as_uint(v.w)};
#pragma unroll
      for (int mi = 0; mi < FMT; ++mi) mosa_mma3(s[mi][ni], ab[mi], as[mi], bb, bs);
    }
  }
}

// o += P V over the tile's FKT keys, P = s (probabilities, accumulator layout). The m16n8k8 A
// fragment wants keys t and t + 4 of each 8-key step where the accumulator holds keys 2t and
// 2t + 1; the sum over keys does not care which slot a key takes as long as V's B fragment takes
// the same, so slot t gets key 2t and slot t + 4 key 2t + 1 (mosa_fa_store_v lays V out so).
__device__ __forceinline__ void mosa_fa_pv(float (&o)[FMT][FSTEPS][4], const float (&s)[FMT][FKN][4], const float* Vs,
    int pe) {
#pragma unroll
  for (int kk = 0; kk < FKN; ++kk) {
    u32 pb[FMT][4], ps[FMT][4];
#pragma unroll
    for (int mi = 0; mi < FMT; ++mi) {
      mosa_split(s[mi][kk][0], pb[mi][0], ps[mi][0]);
      mosa_split(s[mi][kk][2], pb[mi][1], ps[mi][1]);
      mosa_split(s[mi][kk][1], pb[mi][2], ps[mi][2]);
      mosa_split(s[mi][kk][3], pb[mi][3], ps[mi][3]);
    }
#pragma unroll
    for (int nd = 0; nd < FSTEPS; ++nd) {
      const int b = kk * FSTEPS + nd;
      const float4 v = mosa_ld4(Vs + 4 * (b * 32 + (pe ^ ((b & 1) << 2))));
      const u32 vb[2] = {__float_as_uint(v.x), __float_as_uint(v.y)};
      const u32 vs[2] = {__float_as_uint(v.z), __float_as_uint(v.w)};
#pragma unroll
      for (int mi = 0; mi < FMT; ++mi) mosa_mma3(o[mi][nd], pb[mi], ps[mi], vb, vs);
    }
  }
}

// Query tile qt (FQ rows) of head (blockIdx.y, blockIdx.z) against the keys of query tiles
// [t0, t1) (in key tiles of FKT; up to the diagonal); PART and the outputs as in mosa_attend_tile.
// Warp w owns rows r0 = q0 + 16 FMT w .. and stops after the key tile holding its last row; it
// masks the tiles reaching past r0 (one, or two for 16-key tiles with 32 rows a warp). The next
// tile's K and V are fetched into registers while this one is used: K during S (stored after the
// first barrier, when every warp is done with Ks), V during the softmax and P.V (stored after the
// second).
template <bool PART>
__device__ __forceinline__ void mosa_fa_tile(float* smem, int qt, int t0, int t1, int part,
    const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
    float* __restrict__ out, float* __restrict__ lse, float* __restrict__ opart, float* __restrict__ mpart,
    float* __restrict__ lpart, int K, int Hs, float scale) {
  float* Qs = smem;
  float* Ks = Qs + FQ * D * (MOSA_FA_SPLIT_Q ? 2 : 1);
  float* Vs = Ks + 2 * FKT * D;
  const int tid = threadIdx.x, w = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const int pe = mosa_fpos(lane, 0);
  const int q0 = qt * FQ, r0 = q0 + 16 * FMT * w;
  const int last = (r0 + 16 * FMT - 1) / FKT;
  const int kt0 = t0 * (FQ / FKT), kt1 = min(t1 * (FQ / FKT), (min(q0 + FQ, K) - 1) / FKT + 1);
  const usize bh = (usize)blockIdx.z * Hs + blockIdx.y;
  const usize base = bh * K * D;
  // The warp's Q rows (times scale, zeros past K) in A-fragment order: float4 (mi, s) of lane
  // (g, t) holds rows 16 mi + g, + 8 at dims 8 s + t, + 4; split, its big halves and its small
  // halves are two such float4 (planes 2 (mi FSTEPS + s) and + 1, so a warp's loads stay
  // contiguous). Each lane reads back only what it wrote, so no barrier orders these.
  float* Qw = Qs + w * (16 * FMT * D) * (MOSA_FA_SPLIT_Q ? 2 : 1);
#pragma unroll
  for (int mi = 0; mi < FMT; ++mi)
#pragma unroll
    for (int st = 0; st < FSTEPS; ++st) {
      const int ra = r0 + 16 * mi + g, c = 8 * st + t;
      const float* pa = q + base + (usize)ra * D + c;
      float4 a;
      a.x = ra < K ? pa[0] * scale : 0.0f;
      a.y = ra + 8 < K ? pa[8 * D] * scale : 0.0f;
      a.z = ra < K ? pa[4] * scale : 0.0f;
      a.w = ra + 8 < K ? pa[8 * D + 4] * scale : 0.0f;
#if MOSA_FA_SPLIT_Q
      u32 hi[4], lo[4];
      mosa_split(a.x, hi[0], lo[0]);
      mosa_split(a.y, hi[1], lo[1]);
      mosa_split(a.z, hi[2], lo[2]);
      mosa_split(a.w, hi[3], lo[3]);
      float4 h, l;
      h.x = __uint_as_float(hi[0]);
      h.y = __uint_as_float(hi[1]);
      h.z = __uint_as_float(hi[2]);
      h.w = __uint_as_float(hi[3]);
      l.x = __uint_as_float(lo[0]);
      l.y = __uint_as_float(lo[1]);
      l.z = __uint_as_float(lo[2]);
      l.w = __uint_as_float(lo[3]);
      mosa_st4(Qw + 4 * ((2 * (mi * FSTEPS + st)) * 32 + lane), h);
      mosa_st4(Qw + 4 * ((2 * (mi * FSTEPS + st) + 1) * 32 + lane), l);
#else
      mosa_st4(Qw + 4 * ((mi * FSTEPS + st) * 32 + lane), a);
#endif
    }
  float o[FMT][FSTEPS][4], m[FMT][2], l[FMT][2];
#pragma unroll
  for (int mi = 0; mi < FMT; ++mi) {
#pragma unroll
    for (int nd = 0; nd < FSTEPS; ++nd)
#pragma unroll
      for (int e = 0; e < 4; ++e) o[mi][nd][e] = 0.0f;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      m[mi][h] = -INFINITY;
      l[mi][h] = 0.0f;  // this lane's share of the row sum (its quad's four add up at the end)
    }
  }
  const float L2E = 1.4426950408889634f;
  float4 kr[FUNITS][2], vr[FUNITS][2];
  mosa_fa_fetch_k(kr, k + base, kt0 * FKT, K);
  mosa_fa_fetch_v(vr, v + base, kt0 * FKT, K);
  mosa_fa_store_k(Ks, kr);
  mosa_fa_store_v(Vs, vr);
  __syncthreads();
  for (int j = kt0; j < kt1; ++j) {
    const bool more = j + 1 < kt1, active = j <= last;
    if (more) mosa_fa_fetch_k(kr, k + base, (j + 1) * FKT, K);
    float s[FMT][FKN][4];
    if (active) mosa_fa_scores(s, Qw, Ks, lane, pe);
    __syncthreads();
    if (more) {
      mosa_fa_store_k(Ks, kr);
      mosa_fa_fetch_v(vr, v + base, (j + 1) * FKT, K);
    }
    if (active) {
      if (j * FKT + FKT - 1 > r0) {
#pragma unroll
        for (int mi = 0; mi < FMT; ++mi)
#pragma unroll
          for (int ni = 0; ni < FKN; ++ni)
#pragma unroll
            for (int e = 0; e < 4; ++e)
              if (j * FKT + 8 * ni + 2 * t + (e & 1) > r0 + 16 * mi + g + 8 * (e >> 1)) s[mi][ni][e] = -INFINITY;
      }
#pragma unroll
      for (int mi = 0; mi < FMT; ++mi)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          float mx = -INFINITY;
#pragma unroll
          for (int ni = 0; ni < FKN; ++ni) mx = fmaxf(mx, fmaxf(s[mi][ni][2 * h], s[mi][ni][2 * h + 1]));
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
          const float mnew = fmaxf(m[mi][h], mx);
          // exp(x - m) as exp2 of one fma; m * log2(e) is rounded the same way (no fma) for the
          // rescale, so the factor its rounding puts on every p of a row is the same on every tile.
          // A row with no key yet (16-key tiles: a warp's first m-tile on its last tile) keeps
          // m = -inf; 0 keeps its alpha and p at 0 rather than NaN.
          const float mscaled = mnew == -INFINITY ? 0.0f : __fmul_rn(mnew, L2E);
          const float alpha = mosa_ex2(__fmul_rn(m[mi][h], L2E) - mscaled);  // 0 on the warp's first tile
          m[mi][h] = mnew;
          float sum = 0.0f;
#pragma unroll
          for (int ni = 0; ni < FKN; ++ni)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              const float p = mosa_ex2(fmaf(s[mi][ni][2 * h + e], L2E, -mscaled));
              s[mi][ni][2 * h + e] = p;
              sum += p;
            }
          l[mi][h] = fmaf(l[mi][h], alpha, sum);
#pragma unroll
          for (int nd = 0; nd < FSTEPS; ++nd) {
            o[mi][nd][2 * h] *= alpha;
            o[mi][nd][2 * h + 1] *= alpha;
          }
        }
      mosa_fa_pv(o, s, Vs, pe);
    }
    __syncthreads();
    if (more) mosa_fa_store_v(Vs, vr);
  }
  const usize rows = (usize)gridDim.z * Hs * K;
#pragma unroll
  for (int mi = 0; mi < FMT; ++mi)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float lt = l[mi][h];
      lt += __shfl_xor_sync(0xffffffffu, lt, 1);
      lt += __shfl_xor_sync(0xffffffffu, lt, 2);
      const int row = r0 + 16 * mi + g + 8 * h;
      if (row >= K) continue;
      float* dst;
      float mul = 1.0f;
      if (PART) {
        // A warp whose rows see none of this part's keys writes m = -inf, l = 0, o = 0.
        if (t == 0) {
          mpart[part * rows + bh * K + row] = m[mi][h];
          lpart[part * rows + bh * K + row] = lt;
        }
        dst = opart + (part * rows + bh * K + row) * D;
      } else {
        if (t == 0) lse[bh * K + row] = m[mi][h] + logf(lt);
        dst = out + base + (usize)row * D;
        mul = 1.0f / lt;
      }
#pragma unroll
      for (int nd = 0; nd < FSTEPS; ++nd) {
        float2 pair;
        pair.x = o[mi][nd][2 * h] * mul;
        pair.y = o[mi][nd][2 * h + 1] * mul;
        *reinterpret_cast<float2*>(dst + 8 * nd + 2 * t) = pair;
      }
    }
}

#if MOSA_REGISTER_ATTEND
#define MOSA_AQ FQ
#define MOSA_FWD_BOUNDS MOSA_FA_BOUNDS
#define MOSA_FWD_TILE mosa_fa_tile
#else
#define MOSA_AQ AB
#define MOSA_FWD_BOUNDS MOSA_ATTEND_BOUNDS
#define MOSA_FWD_TILE mosa_attend_tile
#endif

// Grid (ceil(K/MOSA_AQ), Hs, B): one query tile against every key tile up to the diagonal.
extern "C" __global__ void MOSA_FWD_BOUNDS mosa_attend(const float* __restrict__ q,
    const float* __restrict__ k, const float* __restrict__ v, float* __restrict__ out,
    float* __restrict__ lse, int K, int Hs, float scale) {
  MOSA_DYNAMIC_SMEM(mosa_smem);
  const int qt = (int)gridDim.x - 1 - (int)blockIdx.x;  // the longest rows first
  MOSA_FWD_TILE<false>(reinterpret_cast<float*>(mosa_smem), qt, 0, qt + 1, 0, q, k, v, out, lse, nullptr, nullptr,
                       nullptr, K, Hs, scale);
}

// Split over keys, for few long rows (the dense heads): grid (n S, Hs, B), n = ceil(K/MOSA_AQ)
// query tiles, S parts of L query tiles' worth of keys each; block x takes query tile n - 1 - x / S
// (the longest first) against the keys of query tiles [L s, L s + L) with s = x % S, up to the
// diagonal (an empty range returns).
extern "C" __global__ void MOSA_FWD_BOUNDS mosa_attend_part(const float* __restrict__ q,
    const float* __restrict__ k, const float* __restrict__ v, float* __restrict__ opart,
    float* __restrict__ mpart, float* __restrict__ lpart, int K, int Hs, float scale, int S, int L) {
  MOSA_DYNAMIC_SMEM(mosa_smem);
  const int n = (int)gridDim.x / S, x = (int)blockIdx.x;
  const int qt = n - 1 - x / S, s = x % S;
  const int t0 = s * L, t1 = min(t0 + L, qt + 1);
  if (t0 >= t1) return;
  MOSA_FWD_TILE<true>(reinterpret_cast<float*>(mosa_smem), qt, t0, t1, s, q, k, v, nullptr, nullptr, opart, mpart,
                      lpart, K, Hs, scale);
}

// Merges mosa_attend_part's slabs: one warp per row of [B*Hs*K] (rows), the parts that saw keys.
extern "C" __global__ void __launch_bounds__(256) mosa_attend_combine(const float* __restrict__ opart,
    const float* __restrict__ mpart, const float* __restrict__ lpart, float* __restrict__ out,
    float* __restrict__ lse, int K, int rows, int S, int L) {
  const int row = blockIdx.x * 8 + (threadIdx.x >> 5), lane = threadIdx.x & 31;
  if (row >= rows) return;
  const int qt = (row % K) / MOSA_AQ;
  const int parts = min(S, qt / L + 1);
  float m = -INFINITY;
  for (int s = 0; s < parts; ++s) m = fmaxf(m, mpart[(usize)s * rows + row]);
  float l = 0.0f;
  for (int s = 0; s < parts; ++s) l += lpart[(usize)s * rows + row] * expf(mpart[(usize)s * rows + row] - m);
  const float inv = 1.0f / l;
  for (int d = lane; d < D; d += 32) {
    float acc = 0.0f;
    for (int s = 0; s < parts; ++s)
      acc += opart[((usize)s * rows + row) * D + d] * expf(mpart[(usize)s * rows + row] - m);
    out[(usize)row * D + d] = acc * inv;
  }
  if (lane == 0) lse[row] = m + logf(l);
}

// delta_r = dout_r . out_r and lse_r for AB query rows starting at q0 (4 threads per row).
// pre != 0: rows holds delta itself (mosa_attend_delta, once per row); otherwise rows is the
// forward output and delta is computed here (again by every block that visits the query tile).
__device__ __forceinline__ void mosa_row_stats(const float* dout, const float* rows, const float* lse,
    float* deltaS, float* lseS, int q0, int K, int pre) {
  const int r = threadIdx.x >> 2, part = threadIdx.x & 3;
  const int qi = q0 + r;
  if (pre) {
    if (part == 0) {
      deltaS[r] = qi < K ? rows[qi] : 0.0f;
      lseS[r] = qi < K ? lse[qi] : 0.0f;
    }
    return;
  }
  float acc = 0.0f;
  if (qi < K)
    for (int d = part; d < D; d += 4) acc = fmaf(dout[(usize)qi * D + d], rows[(usize)qi * D + d], acc);
  acc += __shfl_xor_sync(0xffffffffu, acc, 1);
  acc += __shfl_xor_sync(0xffffffffu, acc, 2);
  if (part == 0) {
    deltaS[r] = acc;
    lseS[r] = qi < K ? lse[qi] : 0.0f;
  }
}

// delta[row] = dout[row] . out[row] over [rows, D] (one warp per row, 8 rows per block): the
// attention backward's row term, computed once instead of in every key-tile block.
extern "C" __global__ void __launch_bounds__(256) mosa_attend_delta(const float* __restrict__ out,
    const float* __restrict__ dout, float* __restrict__ delta, int rows) {
  const int row = blockIdx.x * 8 + (threadIdx.x >> 5), lane = threadIdx.x & 31;
  float acc = 0.0f;
  if (row < rows)
    for (int d = lane; d < D; d += 32) acc = fmaf(dout[(usize)row * D + d], out[(usize)row * D + d], acc);
  // Every thread reaches the shuffles (no early return; the test emulator needs it).
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
  if (lane == 0 && row < rows) delta[row] = acc;
}

// One key tile (k0 = tile * AB), every query tile at or after it. S^T, dP^T, dV and dK on the
// tensor cores; P and dS per thread: keys ty*4 + i, queries tx + 16 j. DQ: also this key tile's
// share of dQ (dS . K), added to dq (zeroed first) with atomic reductions.
template <bool DQ>
__device__ __forceinline__ void mosa_backward_kv(float* smem, int tile, const float* __restrict__ q,
    const float* __restrict__ k, const float* __restrict__ v, const float* __restrict__ out,
    const float* __restrict__ lse, const float* __restrict__ dout, float* __restrict__ dk,
    float* __restrict__ dv, float* __restrict__ dq, int K, int Hs, float scale, int pre) {
  float* Ks = smem;
  float* Vs = Ks + AB * LDH;
  float* Qs = Vs + AB * LDH;
  float* dOs = Qs + AB * LDH;
  float* Ps = dOs + AB * LDH;
  float* dSs = Ps + AB * LDA;
  __shared__ float lseS[AB];
  __shared__ float deltaS[AB];
  // The atomic kernel's unroll, or the dQ-block kernel's (this function without DQ is only that).
  constexpr int U = DQ ? MOSA_UNROLL : MOSA_DQB_UNROLL;
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int k0 = tile * AB;
  const usize bh = (usize)blockIdx.z * Hs + blockIdx.y;
  const usize base = bh * K * D;
  mosa_rows_load2(Ks, k + base, Vs, v + base, k0, K);
  float dK[1][TN][4], dV[1][TN][4];
  mosa_zero(dK);
  mosa_zero(dV);
  for (int q0 = k0; q0 < K; q0 += AB) {
    __syncthreads();
    mosa_rows_load2(Qs, q + base, dOs, dout + base, q0, K);
    mosa_row_stats(dout + base, pre ? out + bh * K : out + base, lse + bh * K, deltaS, lseS, q0, K, pre);
    __syncthreads();
    mosa_tile_scores<true, U>(Ps, Ks, Qs, dSs, Vs, dOs);
    __syncthreads();
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int a = ty * 4 + i, c = tx + 16 * j, kj = k0 + a, qi = q0 + c;
        const bool ok = kj <= qi && qi < K && kj < K;
        const float p = ok ? expf(Ps[a * LDA + c] * scale - lseS[c]) : 0.0f;
        dSs[a * LDA + c] = p * (dSs[a * LDA + c] - deltaS[c]);
        Ps[a * LDA + c] = p;
      }
    __syncthreads();
    mosa_tile_pv<U>(dV, Ps, dOs);
    mosa_tile_pv<U>(dK, dSs, Qs);
    if (DQ) {
      // dQ[c][n] += sum_a dS[a][c] K[a][n] for the warp's 16 queries x D/2 dims.
      const int w = tid >> 5, wr = (w & 3) * 16, wc = (w >> 2) * (D / 2);
      const int lane = tid & 31, g = lane >> 2, t = lane & 3;
      float gq[1][TN][4];
      mosa_zero(gq);
      mosa_warp_mma<1, TN, U>(
          gq, AB, [&](int r, int a) { return dSs[a * LDA + wr + r]; },
          [&](int n, int a) { return Ks[a * LDH + wc + n]; });
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {
        const int qi = q0 + wr + g + 8 * hh;
        if (qi >= K) continue;
        float* d = dq + base + (usize)qi * D + wc + 2 * t;
#pragma unroll
        for (int ni = 0; ni < TN; ++ni) mosa_red2(d + ni * 8, gq[0][ni][2 * hh] * scale, gq[0][ni][2 * hh + 1] * scale);
      }
    }
  }
  mosa_tile_write(dk + base, dK, k0, K, scale, nullptr);
  mosa_tile_write(dv + base, dV, k0, K, 1.0f, nullptr);
}

// One query tile (q0 = tile * AB), every key tile up to the diagonal. S, dP and dQ on the tensor
// cores; dS per thread: queries ty*4 + i, keys tx + 16 j.
__device__ __forceinline__ void mosa_backward_q(float* smem, int tile, const float* __restrict__ q,
    const float* __restrict__ k, const float* __restrict__ v, const float* __restrict__ out,
    const float* __restrict__ lse, const float* __restrict__ dout, float* __restrict__ dq, int K, int Hs,
    float scale, int pre) {
  float* Qs = smem;
  float* dOs = Qs + AB * LDH;
  float* Ks = dOs + AB * LDH;
  float* Vs = Ks + AB * LDH;
  float* Ss = Vs + AB * LDH;
  float* dPs = Ss + AB * LDA;
  __shared__ float lseS[AB];
  __shared__ float deltaS[AB];
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int q0 = tile * AB;
  const usize bh = (usize)blockIdx.z * Hs + blockIdx.y;
  const usize base = bh * K * D;
  mosa_rows_load2(Qs, q + base, dOs, dout + base, q0, K);
  mosa_row_stats(dout + base, pre ? out + bh * K : out + base, lse + bh * K, deltaS, lseS, q0, K, pre);
  float dQ[1][TN][4];
  mosa_zero(dQ);
  const int last = min(K, q0 + AB) - 1;
  for (int k0 = 0; k0 <= last; k0 += AB) {
    __syncthreads();
    mosa_rows_load2(Ks, k + base, Vs, v + base, k0, K);
    __syncthreads();
    mosa_tile_scores<true, MOSA_DQB_UNROLL>(Ss, Qs, Ks, dPs, dOs, Vs);
    __syncthreads();
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int r = ty * 4 + i, c = tx + 16 * j, qi = q0 + r, kj = k0 + c;
        const bool ok = kj <= qi && qi < K && kj < K;
        const float p = ok ? expf(Ss[r * LDA + c] * scale - lseS[r]) : 0.0f;
        Ss[r * LDA + c] = p * (dPs[r * LDA + c] - deltaS[r]);
      }
    __syncthreads();
    mosa_tile_pv<MOSA_DQB_UNROLL>(dQ, Ss, Ks);
  }
  mosa_tile_write(dq + base, dQ, q0, K, scale, nullptr);
}

// Grid (2 ceil(K/AB), Hs, B): blocks x < n = ceil(K/AB) compute dK, dV of key tile x (the most
// query tiles first), the others dQ of query tile 2n - 1 - x (the most key tiles first), so both
// halves of the backward pass share one launch and fill each other's tails. Both backward kernels:
// with pre != 0, "out" is delta [B, Hs, K] from mosa_attend_delta; otherwise the forward output.
extern "C" __global__ void __launch_bounds__(256) mosa_attend_backward(const float* __restrict__ q,
    const float* __restrict__ k, const float* __restrict__ v, const float* __restrict__ out,
    const float* __restrict__ lse, const float* __restrict__ dout, float* __restrict__ dq,
    float* __restrict__ dk, float* __restrict__ dv, int K, int Hs, float scale, int pre) {
  MOSA_DYNAMIC_SMEM(mosa_smem);
  float* smem = reinterpret_cast<float*>(mosa_smem);
  const int n = (int)gridDim.x / 2, x = (int)blockIdx.x;
  if (x < n) mosa_backward_kv<false>(smem, x, q, k, v, out, lse, dout, dk, dv, nullptr, K, Hs, scale, pre);
  else mosa_backward_q(smem, 2 * n - 1 - x, q, k, v, out, lse, dout, dq, K, Hs, scale, pre);
}

// Grid (ceil(K/AB), Hs, B): one block per key tile computing dK, dV and adding its share of dQ
// (atomic float reductions into dq, zeroed first; the sum order varies from run to run). Two of
// the seven tile products fewer than mosa_attend_backward, which recomputes S and dP for dQ.
extern "C" __global__ void __launch_bounds__(256) mosa_attend_backward_atomic(const float* __restrict__ q,
    const float* __restrict__ k, const float* __restrict__ v, const float* __restrict__ out,
    const float* __restrict__ lse, const float* __restrict__ dout, float* __restrict__ dq,
    float* __restrict__ dk, float* __restrict__ dv, int K, int Hs, float scale, int pre) {
  MOSA_DYNAMIC_SMEM(mosa_smem);
  mosa_backward_kv<true>(reinterpret_cast<float*>(mosa_smem), blockIdx.x, q, k, v, out, lse, dout, dk, dv, dq, K,
                         Hs, scale, pre);
}

// ---------------------------------------------------------------- register backward (FlashAttention-2 style)
// mosa_attend_backward_rb: 128 threads per block of 64 keys; warp w owns keys 16 w .. 16 w + 15. Per
// query tile of 32: S^T = K Q^T and dP^T = V dO^T into mma accumulators, P^T and dS^T computed
// there, then dV^T += dO^T P and dK^T += Q^T dS with P^T and dS^T as B operands straight from the
// accumulators (accumulated over the query tiles in registers), and dQ += dS K through dS in shared
// memory. Every staged tile is split once into its TF32 halves, laid out so that each fragment is
// one or two vector loads landing in the consecutive registers mma.sync takes (no moves). Tiles of
// 64 keys x 32 queries: split K, V, Q, dO and dS take 112 KB at D = 64, so two blocks (8 warps, up
// to 256 registers a thread) share an SM.
#if MOSA_REGISTER_BACKWARD
#define RB_KEYS 64
#define RB_QT 32
#define RB_NP (D / 16)
#ifndef MOSA_EMU
// *p += (a, b, c, d) as one 16-byte atomic reduction (sm_90).
__device__ __forceinline__ void mosa_red4(float* p, float a, float b, float c, float d) {
  asm volatile("red.global.v4.f32.add [%0], {%1, %2, %3, %4};" ::"l"(p), "f"(a), "f"(b), "f"(c), "f"(d) : "memory");
}
#endif
// Split tile layout. Rows come in pairs rp, halves hf = 0, 1: rows 2 rp, 2 rp + 1 of a query tile
// (the products over queries pair the accumulator's columns 2t, 2t + 1), rows 16 u + v, 16 u + 8 + v
// with rp = 8 u + v of a key tile (an mma A fragment's rows g, g + 8). Columns d pair up as h = 0, 1
// inside groups of 16: d = 16 j + 4 (i / 2) + 2 h + i % 2, so the four accumulator columns of one
// output lane over both h are 4 consecutive d (16-byte dQ reductions). Block (rp, j, i): a float4 of
// TF32 big parts, then one of small parts (swapped by mosa_rb_sigma), each holding the pair's 2 x 2
// elements in the order its reads take them as registers: query tiles (2 hf + h), read as dV^T and
// dK^T A fragments (d rows g, g + 8 = h; queries 2t, 2t + 1 = hf) and as 8-byte S^T / dP^T B pairs;
// key tiles (2 h + hf), read as S^T / dP^T A fragments (key rows = hf, d columns t, t + 4 = h) and
// as dQ B pairs for two n-tiles. i is XOR-swizzled by rp % 4: every read and the staging stores
// meet 32 distinct banks per quarter (or half) warp.
__device__ __forceinline__ int mosa_rb_sigma(int rp) { return (rp ^ (rp >> 1)) & 1; }
__device__ __forceinline__ int mosa_rb_at(int rp, int j, int i, int bs) {
  return ((rp * RB_NP + j) * 8 + (i ^ (rp & 3))) * 8 + ((bs ^ mosa_rb_sigma(rp)) << 2);
}
// Rows r0.. of a [K, D] slab, R rows (zeros past K), fetched into registers (the next tile's loads
// then overlap this tile's products) and stored split. Item (rp, j, m): both rows of pair rp at
// columns 16 j + 4 m .. + 3. A warp's items: 4 row pairs x 4 m x 2 j (rows read 128 bytes at a time).
template <int R, bool KEYROWS>
struct MosaRbRows {
  static constexpr int N = R * RB_NP / 64;
  float4 v[2 * N];
  __device__ __forceinline__ static void place(int n, int& rp, int& j, int& m) {
    const int lane = threadIdx.x & 31, wi = (threadIdx.x >> 5) + 4 * n;
    rp = 4 * (wi % (R / 8)) + ((lane >> 1) & 3);
    j = 2 * (wi / (R / 8)) + (lane >> 4);
    m = 2 * ((lane >> 3) & 1) + (lane & 1);
  }
  __device__ __forceinline__ static int row(int rp, int hf) {
    return KEYROWS ? 16 * (rp >> 3) + 8 * hf + (rp & 7) : 2 * rp + hf;
  }
  __device__ __forceinline__ void fetch(const float* src, int r0, int K) {
#pragma unroll
    for (int n = 0; n < N; ++n) {
      int rp, j, m;
      place(n, rp, j, m);
#pragma unroll
      for (int hf = 0; hf < 2; ++hf) {
        const int r = r0 + row(rp, hf);
        v[2 * n + hf] =
            r < K ? mosa_ld4(src + (usize)r * D + 16 * j + 4 * m) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      }
    }
  }
  __device__ __forceinline__ static void put(float* S, int rp, int j, int i, float e0, float e1, float e2, float e3) {
    u32 b0, s0, b1, s1, b2, s2, b3, s3;
    mosa_split(e0, b0, s0);
    mosa_split(e1, b1, s1);
    mosa_split(e2, b2, s2);
    mosa_split(e3, b3, s3);
    // Elements given as (h, hf) = (0, 0), (1, 0), (0, 1), (1, 1).
    const float4 big = KEYROWS ? make_float4(__uint_as_float(b0), __uint_as_float(b2), __uint_as_float(b1), __uint_as_float(b3))
                               : make_float4(__uint_as_float(b0), __uint_as_float(b1), __uint_as_float(b2), __uint_as_float(b3));
    const float4 small = KEYROWS ? make_float4(__uint_as_float(s0), __uint_as_float(s2), __uint_as_float(s1), __uint_as_float(s3))
                                 : make_float4(__uint_as_float(s0), __uint_as_float(s1), __uint_as_float(s2), __uint_as_float(s3));
    mosa_st4(S + mosa_rb_at(rp, j, i, 0), big);
    mosa_st4(S + mosa_rb_at(rp, j, i, 1), small);
  }
  __device__ __forceinline__ void store(float* S) const {
#pragma unroll
    for (int n = 0; n < N; ++n) {
      int rp, j, m;
      place(n, rp, j, m);
      const float4 a = v[2 * n], b = v[2 * n + 1];
      // Column 4 m + c: i = 2 m + c % 2, h = c / 2.
      put(S, rp, j, 2 * m, a.x, a.z, b.x, b.z);
      put(S, rp, j, 2 * m + 1, a.y, a.w, b.y, b.w);
    }
  }
};
__device__ __forceinline__ void mosa_rb_frag4(u32 (&f)[4], float4 v) {
  f[0] = __float_as_uint(v.x);
  f[1] = __float_as_uint(v.y);
  f[2] = __float_as_uint(v.z);
  f[3] = __float_as_uint(v.w);
}
__device__ __forceinline__ void mosa_rb_frag2(u32 (&f)[2], float x, float y) {
  f[0] = __float_as_uint(x);
  f[1] = __float_as_uint(y);
}
// B fragment from two accumulator elements of one row (columns 2t, 2t + 1 taken as k rows t, t + 4;
// the A operand reads queries 2t, 2t + 1 for them): split here, once.
__device__ __forceinline__ void mosa_rb_split2(u32 (&bb)[2], u32 (&bs)[2], float x, float y) {
  mosa_split(x, bb[0], bs[0]);
  mosa_split(y, bb[1], bs[1]);
}

// Grid (n S, Hs, B), n = ceil(K / 64) key tiles, S chunks of L query tiles of 64 per key tile (S = 1:
// every query tile at or after the key tile; S > 1 for few long rows, dk and dv then zeroed and
// added to atomically); dq zeroed first. pre != 0: "out" is delta = dout . out per row
// (mosa_attend_delta); otherwise the forward output, and each block computes delta of its query
// tiles while staging them (one launch instead of two).
extern "C" __global__ void __launch_bounds__(128, 2) mosa_attend_backward_rb(const float* __restrict__ q,
    const float* __restrict__ k, const float* __restrict__ v, const float* __restrict__ out,
    const float* __restrict__ lse, const float* __restrict__ dout, float* __restrict__ dq,
    float* __restrict__ dk, float* __restrict__ dv, int K, int Hs, float scale, int S, int L, int pre) {
  MOSA_DYNAMIC_SMEM(mosa_smem);
  float* Ks = reinterpret_cast<float*>(mosa_smem);
  float* Vs = Ks + RB_KEYS * 2 * D;
  float* Qs = Vs + RB_KEYS * 2 * D;
  float* dOs = Qs + RB_QT * 2 * D;
  float* dSs = dOs + RB_QT * 2 * D;
  // Per query pair p: log2(e) lse of queries 2p, 2p + 1, then delta of both.
  __shared__ float4 stats[RB_QT / 2];
  const int tid = threadIdx.x, w = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const int kt = (int)blockIdx.x / S, chunk = (int)blockIdx.x % S;
  const int k0 = kt * RB_KEYS;
  const int qBegin = k0 + chunk * L * RB_KEYS;
  if (qBegin >= K) return;
  const int qEnd = S == 1 ? K : min(K, qBegin + L * RB_KEYS);
  const usize bh = (usize)blockIdx.z * Hs + blockIdx.y;
  const usize base = bh * K * D;
  const float log2e = 1.4426950408889634f, sl2 = scale * log2e;
  {
    MosaRbRows<RB_KEYS, true> kr, vr;
    kr.fetch(k + base, k0, K);
    vr.fetch(v + base, k0, K);
    kr.store(Ks);
    vr.store(Vs);
  }
  MosaRbRows<RB_QT, false> qr, dor, outr;
  float4 st = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  // The thread that writes stats[pair]: with pre, threads 0..15; otherwise the lanes 0, 2, 4, 6 of
  // each warp, which end up with the delta of pair 4 w + lane / 2 (the rows of their items).
  const int pair = pre ? (tid < RB_QT / 2 ? tid : -1) : ((lane & 25) == 0 ? 4 * w + (lane >> 1) : -1);
  const auto fetchTile = [&](int q0) {
    qr.fetch(q + base, q0, K);
    dor.fetch(dout + base, q0, K);
    float d0 = 0.0f, d1 = 0.0f;
    if (!pre) {
      // A thread's items all sit in row pair 4 w + (lane / 2) % 4 (MosaRbRows::place); the rest of
      // each row is in the lanes differing in bits 0, 3 and 4.
      outr.fetch(out + base, q0, K);
#pragma unroll
      for (int n = 0; n < MosaRbRows<RB_QT, false>::N; ++n) {
        d0 = mosa_dot4(dor.v[2 * n], outr.v[2 * n], d0);
        d1 = mosa_dot4(dor.v[2 * n + 1], outr.v[2 * n + 1], d1);
      }
      const int lanes[3] = {1, 8, 16};
#pragma unroll
      for (int x = 0; x < 3; ++x) {
        d0 += __shfl_xor_sync(0xffffffffu, d0, lanes[x]);
        d1 += __shfl_xor_sync(0xffffffffu, d1, lanes[x]);
      }
    }
    if (pair >= 0) {
      const int qi = q0 + 2 * pair;
      st.x = qi < K ? lse[bh * K + qi] * log2e : 0.0f;
      st.y = qi + 1 < K ? lse[bh * K + qi + 1] * log2e : 0.0f;
      if (pre) {
        d0 = qi < K ? out[bh * K + qi] : 0.0f;
        d1 = qi + 1 < K ? out[bh * K + qi + 1] : 0.0f;
      }
      st.z = d0;
      st.w = d1;
    }
  };
  // Each tile is fetched right before it is stored: fetching the next one during this one's
  // products (prefetch = D <= 64; D = 128 spills) measured slower on the H100 (2026-11-24, D = 64:
  // MoSA heads at T = 8192, s4 2.47 ms against 2.34, s16 1.31 against 1.32; dense heads 1.64
  // against 1.45 and 1.53 against 1.44); kept for the bench's A/B (h100.ts --rb-ab).
  constexpr bool prefetch = false;
  if (prefetch) fetchTile(qBegin);
  // Lane offsets (floats) of the fragment loads; the steps add compile-time offsets.
  // S^T, dP^T A: key rows 16 w + g, + 8 (rp = 8 w + g), d columns t, t + 4 of each 8-step.
  const int aRow = (8 * w + g) * RB_NP * 64 + ((t ^ (g & 3)) << 3);
  const int aSig = (g ^ (g >> 1)) & 1;
  const int aBig = aRow + (aSig << 2), aSmall = aRow + ((aSig ^ 1) << 2);
  // S^T, dP^T B: query row 8 n + g (rp = 4 n + g / 2, hf = g % 2), the same d pair: 8 bytes each.
  const int bRow = (g >> 1) * RB_NP * 64 + ((t ^ (g >> 1)) << 3) + ((g & 1) << 1);
  const int bSig = ((g >> 1) ^ (g >> 2)) & 1;
  const int bBig = bRow + (bSig << 2), bSmall = bRow + ((bSig ^ 1) << 2);
  // dV^T, dK^T A (queries 2t, 2t + 1 of 8-step s: rp = 4 s + t; d rows i = g) and dQ B (keys of
  // pair rp = 4 s + t, columns i = g of two n-tiles): the same offsets in a query or key tile.
  const int rRow = t * RB_NP * 64 + ((g ^ t) << 3);
  const int rSig = (t ^ (t >> 1)) & 1;
  const int rBig = rRow + (rSig << 2), rSmall = rRow + ((rSig ^ 1) << 2);
  // dS: (query pair qp, key pair kp) float4s {(r, lo), (r + 8, lo), (r, hi), (r + 8, hi)}, big then
  // small, kp XOR (qp / 2) % 4 and big/small swapped by (kp ^ qp) % 2 (bank-conflict free for the
  // stores below and these reads). dQ warp w: queries 16 (w % 2) + g, + 8 (qp = 8 (w % 2) + g).
  const int dsRow = ((8 * (w & 1) + g) * 32 + (t ^ (g >> 1))) * 8;
  const int dsSig = (t ^ g) & 1;
  const int dsBig = dsRow + (dsSig << 2), dsSmall = dsRow + ((dsSig ^ 1) << 2);
  // dV^T, dK^T: d rows (m-tile j: i = g, h = 0 / 1 for rows g / g + 8), keys 16 w + 8 kn + 2t, + 1.
  float dKt[RB_NP][2][4], dVt[RB_NP][2][4];
#pragma unroll
  for (int j = 0; j < RB_NP; ++j)
#pragma unroll
    for (int kn = 0; kn < 2; ++kn)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        dKt[j][kn][e] = 0.0f;
        dVt[j][kn][e] = 0.0f;
      }
  for (int q0 = qBegin; q0 < qEnd; q0 += RB_QT) {
    __syncthreads();
    if (!prefetch) fetchTile(q0);
    qr.store(Qs);
    dor.store(dOs);
    if (pair >= 0) stats[pair] = st;
    __syncthreads();
    if (prefetch && q0 + RB_QT < qEnd) fetchTile(q0 + RB_QT);
    float sc[4][4], dp[4][4];
#pragma unroll
    for (int n = 0; n < 4; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        sc[n][e] = 0.0f;
        dp[n][e] = 0.0f;
      }
    // D = 128: fully unrolled, the hoisted loads spill (8 bytes).
    constexpr int scoreUnroll = D > 64 ? 4 : D / 8;
#pragma unroll scoreUnroll
    for (int s = 0; s < D / 8; ++s) {
      const int o = (s >> 1) * 64 + (s & 1) * 32;
      u32 kb[4], ks[4], vb[4], vs[4];
      mosa_rb_frag4(kb, mosa_ld4(Ks + aBig + o));
      mosa_rb_frag4(ks, mosa_ld4(Ks + aSmall + o));
      mosa_rb_frag4(vb, mosa_ld4(Vs + aBig + o));
      mosa_rb_frag4(vs, mosa_ld4(Vs + aSmall + o));
#pragma unroll
      for (int n = 0; n < 4; ++n) {
        const int bo = n * 4 * RB_NP * 64 + o;
        const float2 qb2 = *reinterpret_cast<const float2*>(Qs + bBig + bo);
        const float2 qs2 = *reinterpret_cast<const float2*>(Qs + bSmall + bo);
        const float2 db2 = *reinterpret_cast<const float2*>(dOs + bBig + bo);
        const float2 ds2 = *reinterpret_cast<const float2*>(dOs + bSmall + bo);
        u32 qb[2], qs[2], db[2], ds[2];
        mosa_rb_frag2(qb, qb2.x, qb2.y);
        mosa_rb_frag2(qs, qs2.x, qs2.y);
        mosa_rb_frag2(db, db2.x, db2.y);
        mosa_rb_frag2(ds, ds2.x, ds2.y);
        mosa_mma3(sc[n], kb, ks, qb, qs);
        mosa_mma3(dp[n], vb, vs, db, ds);
      }
    }
    // P^T and dS^T in the accumulator layout: element e of n-tile n is key 16 w + g + 8 (e / 2),
    // query q0 + 8 n + 2 t + e % 2. Only the diagonal tiles and the last one need the mask.
    const bool masked = q0 < k0 + RB_KEYS || q0 + RB_QT > K;
#pragma unroll
    for (int n = 0; n < 4; ++n) {
      const float4 sn = stats[4 * n + t];
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float l = (e & 1) ? sn.y : sn.x, dl = (e & 1) ? sn.w : sn.z;
        float p = exp2f(sc[n][e] * sl2 - l);
        if (masked) {
          const int kj = k0 + 16 * w + g + 8 * (e >> 1), qi = q0 + 8 * n + 2 * t + (e & 1);
          if (!(kj <= qi && qi < K)) p = 0.0f;
        }
        sc[n][e] = p;
        dp[n][e] = p * (dp[n][e] - dl);
      }
    }
    // dV^T += dO^T P^T', dK^T += Q^T dS^T' over the tile's queries: k step s = the scores' n-tile s,
    // B n-tile kn = the warp's keys 8 kn .. (accumulator elements 2 kn, 2 kn + 1).
#pragma unroll
    for (int s = 0; s < 4; ++s) {
      u32 pb[2][2], ps[2][2], sb[2][2], ss[2][2];
#pragma unroll
      for (int kn = 0; kn < 2; ++kn) {
        mosa_rb_split2(pb[kn], ps[kn], sc[s][2 * kn], sc[s][2 * kn + 1]);
        mosa_rb_split2(sb[kn], ss[kn], dp[s][2 * kn], dp[s][2 * kn + 1]);
      }
      if (s & 1) {
        // dS of n-tiles s - 1, s as dQ's A operand: rows r = 8 (s - 1) + 2t + e and r + 8, key pair
        // kp = 8 w + g; qp = 8 (s / 2) + 2t + e, so the swizzles are t and (g ^ e) % 2.
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          u32 b0, s0, b1, s1, b2, s2, b3, s3;
          mosa_split(dp[s - 1][e], b0, s0);
          mosa_split(dp[s][e], b1, s1);
          mosa_split(dp[s - 1][2 + e], b2, s2);
          mosa_split(dp[s][2 + e], b3, s3);
          const int at = (((8 * (s >> 1) + 2 * t + e) * 32 + 8 * w + (g ^ t)) * 2) * 4;
          const int sig = (g ^ e) & 1;
          mosa_st4(dSs + at + (sig << 2), make_float4(__uint_as_float(b0), __uint_as_float(b1), __uint_as_float(b2),
                                                      __uint_as_float(b3)));
          mosa_st4(dSs + at + ((sig ^ 1) << 2), make_float4(__uint_as_float(s0), __uint_as_float(s1),
                                                            __uint_as_float(s2), __uint_as_float(s3)));
        }
      }
#pragma unroll
      for (int j = 0; j < RB_NP; ++j) {
        const int ao = s * 4 * RB_NP * 64 + j * 64;
        u32 ob[4], os[4], qb[4], qs[4];
        mosa_rb_frag4(ob, mosa_ld4(dOs + rBig + ao));
        mosa_rb_frag4(os, mosa_ld4(dOs + rSmall + ao));
        mosa_rb_frag4(qb, mosa_ld4(Qs + rBig + ao));
        mosa_rb_frag4(qs, mosa_ld4(Qs + rSmall + ao));
#pragma unroll
        for (int kn = 0; kn < 2; ++kn) {
          mosa_mma3(dVt[j][kn], ob, os, pb[kn], ps[kn]);
          mosa_mma3(dKt[j][kn], qb, qs, sb[kn], ss[kn]);
        }
      }
    }
    __syncthreads();
    // dQ (queries 16 (w % 2) .., the n-pairs of half w / 2 of d) += dS K over the 64 keys.
    {
      constexpr int NJ = RB_NP / 2;
      const int j0 = (w >> 1) * NJ;
      float gq[NJ][2][4];
#pragma unroll
      for (int j = 0; j < NJ; ++j)
#pragma unroll
        for (int h = 0; h < 2; ++h)
#pragma unroll
          for (int e = 0; e < 4; ++e) gq[j][h][e] = 0.0f;
#pragma unroll
      for (int s = 0; s < RB_KEYS / 8; ++s) {
        u32 ab[4], as[4];
        mosa_rb_frag4(ab, mosa_ld4(dSs + dsBig + 32 * s));
        mosa_rb_frag4(as, mosa_ld4(dSs + dsSmall + 32 * s));
#pragma unroll
        for (int j = 0; j < NJ; ++j) {
          const int ko = s * 4 * RB_NP * 64 + (j0 + j) * 64;
          const float4 kb = mosa_ld4(Ks + rBig + ko), ks = mosa_ld4(Ks + rSmall + ko);
          u32 bb0[2], bs0[2], bb1[2], bs1[2];
          mosa_rb_frag2(bb0, kb.x, kb.y);
          mosa_rb_frag2(bs0, ks.x, ks.y);
          mosa_rb_frag2(bb1, kb.z, kb.w);
          mosa_rb_frag2(bs1, ks.z, ks.w);
          mosa_mma3(gq[j][0], ab, as, bb0, bs0);
          mosa_mma3(gq[j][1], ab, as, bb1, bs1);
        }
      }
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {
        const int qi = q0 + 16 * (w & 1) + g + 8 * hh;
        if (qi >= K) continue;
        float* d = dq + base + (usize)qi * D + 4 * t;
#pragma unroll
        for (int j = 0; j < NJ; ++j)
          mosa_red4(d + 16 * (j0 + j), gq[j][0][2 * hh] * scale, gq[j][0][2 * hh + 1] * scale,
                    gq[j][1][2 * hh] * scale, gq[j][1][2 * hh + 1] * scale);
      }
    }
  }
  // dK^T, dV^T element e of (j, kn): d = 16 j + 4 (g / 2) + 2 (e / 2) + g % 2, key 16 w + 8 kn + 2t + e % 2.
#pragma unroll
  for (int kn = 0; kn < 2; ++kn)
#pragma unroll
    for (int c = 0; c < 2; ++c) {
      const int kj = k0 + 16 * w + 8 * kn + 2 * t + c;
      if (kj >= K) continue;
      float* a = dk + base + (usize)kj * D + 4 * (g >> 1) + (g & 1);
      float* b = dv + base + (usize)kj * D + 4 * (g >> 1) + (g & 1);
#pragma unroll
      for (int j = 0; j < RB_NP; ++j)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const float gk = dKt[j][kn][2 * h + c] * scale, gv = dVt[j][kn][2 * h + c];
          if (S == 1) {
            a[16 * j + 2 * h] = gk;
            b[16 * j + 2 * h] = gv;
          } else {
            atomicAdd(a + 16 * j + 2 * h, gk);
            atomicAdd(b + 16 * j + 2 * h, gv);
          }
        }
    }
}
#endif

// ---------------------------------------------------------------- the library-GEMM route
// Where the selected rows are many (cudaGemms in programs.ts), the projections and weight
// gradients run as batched float32 GEMMs of the backend's matmul (cuBLASLt on CUDA) on gathered
// rows; these kernels move the rows in and out. Row r of a [B, Hs, K, C] slab is (b, h, i) with
// r = (b Hs + h) K + i, the layout of indices and scores, so indices[r] is the row's position.
__device__ __forceinline__ void mosa_copy_row(const float* src, float* dst, int C, float mul) {
  const int lane = threadIdx.x & 31;
  if ((C & 3) == 0) {
    for (int c = lane * 4; c < C; c += 128) {
      const float4 v = mosa_ld4(src + c);
      mosa_st4(dst + c, make_float4(v.x * mul, v.y * mul, v.z * mul, v.w * mul));
    }
  } else {
    for (int c = lane; c < C; c += 32) dst[c] = src[c] * mul;
  }
}

// Grid (ceil(rows / 8)): one warp per selected row; xg[r] = x[b, indices[r]].
extern "C" __global__ void __launch_bounds__(256) mosa_gather_rows(const float* __restrict__ x,
    const int* __restrict__ indices, float* __restrict__ xg, int T, int C, int HK, int rows) {
  const int r = blockIdx.x * 8 + (threadIdx.x >> 5);
  if (r >= rows) return;
  mosa_copy_row(x + ((usize)(r / HK) * T + indices[r]) * C, xg + (usize)r * C, C, 1.0f);
}

// The same, each row times its router score (dWo's operand: dy rows times score).
extern "C" __global__ void __launch_bounds__(256) mosa_gather_rows_scaled(const float* __restrict__ x,
    const int* __restrict__ indices, const float* __restrict__ scores, float* __restrict__ xg, int T, int C, int HK,
    int rows) {
  const int r = blockIdx.x * 8 + (threadIdx.x >> 5);
  if (r >= rows) return;
  mosa_copy_row(x + ((usize)(r / HK) * T + indices[r]) * C, xg + (usize)r * C, C, scores[r]);
}

// Grid (ceil(rows / 8)): y[b, indices[r]] += src[r] (y zeroed first; heads meet at a row, so atomics).
extern "C" __global__ void __launch_bounds__(256) mosa_scatter_rows(const float* __restrict__ src,
    const int* __restrict__ indices, float* __restrict__ y, int T, int C, int HK, int rows) {
  const int r = blockIdx.x * 8 + (threadIdx.x >> 5), lane = threadIdx.x & 31;
  if (r >= rows) return;
  const float* s = src + (usize)r * C;
  float* d = y + ((usize)(r / HK) * T + indices[r]) * C;
  for (int c = lane; c < C; c += 32) atomicAdd(d + c, s[c]);
}

// Grid (ceil(rows D / 512)): q, k, v [rows, D] from the projections' stacked rows [rows, 3D], q and
// k rotated at their rows' original positions (the epilogue of mosa_project: angles in double,
// the same rounding). ropeBase <= 0: split as they are.
extern "C" __global__ void __launch_bounds__(256) mosa_unstack3_rope(const float* __restrict__ qkv,
    const int* __restrict__ indices, float* __restrict__ q, float* __restrict__ k, float* __restrict__ v, int rows,
    float ropeBase) {
  const usize e = (usize)blockIdx.x * 256 + threadIdx.x;
  if (e >= (usize)rows * (D / 2)) return;
  const usize r = e / (D / 2);
  const int n = (int)(e % (D / 2));
  const usize at = r * D + n;
  const float* i = qkv + r * 3 * D + n;
  const float q1 = i[0], q2 = i[D / 2], k1 = i[D], k2 = i[D + D / 2];
  if (ropeBase > 0.0f) {
    double s, c;
    sincos((double)indices[r] * pow((double)ropeBase, -2.0 * n / D), &s, &c);
    const float cf = (float)c, sf = (float)s;
    q[at] = q1 * cf - q2 * sf;
    q[at + D / 2] = q2 * cf + q1 * sf;
    k[at] = k1 * cf - k2 * sf;
    k[at + D / 2] = k2 * cf + k1 * sf;
  } else {
    q[at] = q1;
    q[at + D / 2] = q2;
    k[at] = k1;
    k[at + D / 2] = k2;
  }
  v[at] = i[2 * D];
  v[at + D / 2] = i[2 * D + D / 2];
}

// Grid-stride: out[r, w L + j] = (a, b, c)[w][r, j] for [R, L] slabs: [dq | dk | dv] rows for
// one GEMM of reduction depth 3D, and the heads' [Wq_h; Wk_h; Wv_h] (L = D C).
extern "C" __global__ void __launch_bounds__(256) mosa_stack3(const float* __restrict__ a,
    const float* __restrict__ b, const float* __restrict__ c, float* __restrict__ out, int R, int L) {
  const usize n = (usize)R * L;
  for (usize e = (usize)blockIdx.x * 256 + threadIdx.x; e < n; e += (usize)gridDim.x * 256) {
    const usize r = e / L, j = e % L, o = r * 3 * L + j;
    out[o] = a[e];
    out[o + L] = b[e];
    out[o + 2 * L] = c[e];
  }
}

// Grid (ceil(rows D / 512)): [dq | dk | dv] rows [rows, 3D] for the projections' backward GEMMs,
// dq and dk rotated back from their rows' positions on the way (RoPE's gradient is the inverse
// rotation; the angles as in mosa_unstack3_rope). ropeBase <= 0: stacked as they are.
extern "C" __global__ void __launch_bounds__(256) mosa_stack3_unrope(const float* __restrict__ dq,
    const float* __restrict__ dk, const float* __restrict__ dv, const int* __restrict__ indices,
    float* __restrict__ out, int rows, float ropeBase) {
  const usize e = (usize)blockIdx.x * 256 + threadIdx.x;
  if (e >= (usize)rows * (D / 2)) return;
  const usize r = e / (D / 2);
  const int n = (int)(e % (D / 2));
  const usize at = r * D + n;
  float* o = out + r * 3 * D + n;
  const float q1 = dq[at], q2 = dq[at + D / 2], k1 = dk[at], k2 = dk[at + D / 2];
  if (ropeBase > 0.0f) {
    double s, c;
    sincos((double)indices[r] * pow((double)ropeBase, -2.0 * n / D), &s, &c);
    const float cf = (float)c, sf = (float)s;
    o[0] = q1 * cf + q2 * sf;
    o[D / 2] = q2 * cf - q1 * sf;
    o[D] = k1 * cf + k2 * sf;
    o[D + D / 2] = k2 * cf - k1 * sf;
  } else {
    o[0] = q1;
    o[D / 2] = q2;
    o[D] = k1;
    o[D + D / 2] = k2;
  }
  o[2 * D] = dv[at];
  o[2 * D + D / 2] = dv[at + D / 2];
}

// Grid-stride: the inverse of mosa_stack3, (a, b, c)[w][r, j] = src[r, w L + j] (dWq, dWk, dWv
// from the heads' [Hs, 3D, C] gradient, L = D C).
extern "C" __global__ void __launch_bounds__(256) mosa_unstack3(const float* __restrict__ src,
    float* __restrict__ a, float* __restrict__ b, float* __restrict__ c, int R, int L) {
  const usize n = (usize)R * L;
  for (usize e = (usize)blockIdx.x * 256 + threadIdx.x; e < n; e += (usize)gridDim.x * 256) {
    const usize r = e / L, j = e % L, i = r * 3 * L + j;
    a[e] = src[i];
    b[e] = src[i + L];
    c[e] = src[i + 2 * L];
  }
}

// Grid-stride: dWo [C, Hs D] from the per-head GEMM's [Hs, C, D].
extern "C" __global__ void __launch_bounds__(256) mosa_heads_to_columns(const float* __restrict__ src,
    float* __restrict__ dst, int Hs, int C) {
  const usize n = (usize)Hs * C * D;
  for (usize e = (usize)blockIdx.x * 256 + threadIdx.x; e < n; e += (usize)gridDim.x * 256) {
    const usize p = e % D, c = (e / D) % C, h = e / ((usize)D * C);
    dst[(c * Hs + h) * D + p] = src[e];
  }
}
`
}

/** Dynamic shared memory (bytes) of a fused CUDA kernel for head dim D (0: static only). */
export function mosaCudaSharedBytes(D: number, entry: string, opts: MosaCudaOptions = {}): number {
  const t = cudaTiles(D)
  const head = t.BQ * (D + 4) * 4
  const probs = t.BQ * (t.BQ + 4) * 4
  if (entry === 'mosa_attend' || entry === 'mosa_attend_part') {
    if (opts.registerAttend ?? true) return registerAttendShape(D, opts).bytes
    return 3 * head + probs
  }
  if (entry === 'mosa_attend_backward' || entry === 'mosa_attend_backward_atomic') return 4 * head + 2 * probs
  // Register backward: K, V (64 rows) and Q, dO (32 rows) split (2 floats an element), dS split.
  if (entry === 'mosa_attend_backward_rb') return 4 * (2 * 64 * 2 * D + 2 * 32 * 2 * D + 32 * 2 * 64)
  const staticOnly = [
    'mosa_select',
    'mosa_attend_delta',
    'mosa_attend_combine',
    'mosa_gather_rows',
    'mosa_gather_rows_scaled',
    'mosa_scatter_rows',
    'mosa_unstack3_rope',
    'mosa_stack3',
    'mosa_stack3_unrope',
    'mosa_unstack3',
    'mosa_heads_to_columns',
  ]
  if (staticOnly.includes(entry)) return 0
  // GEMMs (mosa_gemm): both operand chunks, or the 128-row output tile staged for the epilogue.
  const br = Math.max(D, t.BN)
  // (Split staging: 2 BK words a row, within the unsplit layouts' BK + 4 and BM + 8 padding bound
  // below for BK = 16; the epilogue's tile is the larger for every head dim.)
  const a = Math.max(t.BM * (t.BK + 4), t.BK * (t.BM + 8), t.BM * 2 * t.BK)
  const b = Math.max(br * (t.BK + 4), t.BK * (br + 8), br * 2 * t.BK)
  return 4 * Math.max(a + b, t.BM * (br + 4))
}
