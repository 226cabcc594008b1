// Standalone H100 harness for the TPA tensor-core decode kernels (float16, h = 16, d_h = 64,
// R_K = R_V = 2): loads cubins built from the package's CUDA source (gen.ts writes the sources,
// build.sh compiles them for sm_90a), checks every variant against a float64 CPU reference on
// fresh random caches, and times the calls kernel-bound as the package bench does (a delay
// kernel holds the GPU while every timed call is queued behind it; caches rotated past L2).
// Modes: check | time | prof (one launch of each variant per shape, for ncu) | all.
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#define CK(x)                                                                                   \
  do {                                                                                          \
    cudaError_t e_ = (x);                                                                       \
    if (e_ != cudaSuccess) {                                                                    \
      fprintf(stderr, "CUDA error %s at %s:%d: %s\n", cudaGetErrorString(e_), __FILE__, __LINE__, #x); \
      exit(1);                                                                                  \
    }                                                                                           \
  } while (0)

static const int H = 16, D = 64, R = 2, REC = 320, TILE = 32, TAIL_CAP = 64, TAIL_TOKENS = 32;
static const int OFF_AK = 0, OFF_BK = 32, OFF_AV = 160, OFF_BV = 192;
static std::string DIR = ".";

// ---------------------------------------------------------------- helper kernels
__device__ __forceinline__ uint32_t hash32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}
// Approximately normal values (sum of 4 uniforms, variance 1), never exactly zero.
__global__ void fill_f16(unsigned short* p, size_t n, uint32_t seed) {
  for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n; e += (size_t)gridDim.x * blockDim.x) {
    float s = 0.f;
    uint32_t h = hash32((uint32_t)e * 0x9e3779b9u ^ seed ^ (uint32_t)(e >> 32) * 0x85ebca6bu);
    for (int k = 0; k < 4; ++k) {
      h = hash32(h + 0x6d2b79f5u);
      s += (h >> 8) * (1.0f / 16777216.0f) - 0.5f;
    }
    float v = s * 1.7320508f;
    if (v == 0.f) v = 0.01f;
    p[e] = __half_as_ushort(__float2half_rn(v));
  }
}
__global__ void delay_k(unsigned long long ns) {
  unsigned long long t0, t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
  do {
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  } while (t - t0 < ns);
}
__global__ void empty_k() {}
__global__ void copyk(const uint4* __restrict__ s, uint4* __restrict__ d, size_t n) {
  for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n; e += (size_t)gridDim.x * blockDim.x) d[e] = s[e];
}
// Reads n 16-byte words (4 independent loads in flight per thread), writes nothing unless the xor is a magic value.
__global__ void readk(const uint4* __restrict__ s, size_t n, unsigned* out) {
  unsigned acc = 0;
  const size_t stride = (size_t)gridDim.x * blockDim.x;
  size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  for (; e + 3 * stride < n; e += 4 * stride) {
    uint4 a = s[e], b = s[e + stride], c = s[e + 2 * stride], d = s[e + 3 * stride];
    acc ^= a.x ^ a.y ^ a.z ^ a.w ^ b.x ^ b.y ^ b.z ^ b.w ^ c.x ^ c.y ^ c.z ^ c.w ^ d.x ^ d.y ^ d.z ^ d.w;
  }
  for (; e < n; e += stride) acc ^= s[e].x ^ s[e].y ^ s[e].z ^ s[e].w;
  if (acc == 0x12345678u) out[0] = acc;
}

// ---------------------------------------------------------------- cubins
static cudaKernel_t loadKernel(const char* file, const char* name) {
  cudaLibrary_t lib;
  std::string path = DIR + "/" + file;
  CK(cudaLibraryLoadFromFile(&lib, path.c_str(), nullptr, nullptr, 0, nullptr, nullptr, 0));
  cudaKernel_t k;
  CK(cudaLibraryGetKernel(&k, lib, name));
  return k;
}

struct Variant {
  const char* name;
  const char* partialFile;
  const char* combineFile;
  int stages;
  bool pdl;
  cudaKernel_t partial, combine;
  int smem;  // dynamic bytes (0: static)
};

struct Cache {
  unsigned short *store, *tail;
};

struct Shape {
  int B, T;
  int storeLen() const { return T - TAIL_TOKENS; }
  size_t storeElems() const { return (size_t)B * T * REC; }
  size_t tailElems() const { return (size_t)B * TAIL_CAP * REC; }
  double cacheBytes() const { return (double)B * T * REC * 2; }
};

struct Plan {
  int splits, tps;
};
static Plan defaultPlan(int B, int T) {
  int wanted = std::max(1, (132 * 4) / B);
  int most = std::max(1, (T + 127) / 128);
  int splits = std::min(wanted, most);
  int tps = ((T + splits - 1) / splits + TILE - 1) / TILE * TILE;
  return {(T + tps - 1) / tps, tps};
}
static Plan planTps(int T, int tps) { return {(T + tps - 1) / tps, tps}; }

struct Bufs {
  unsigned short* q;
  float *partO, *partML;
  unsigned short* out;
};

static void launchCall(const Variant& v, const Shape& s, const Plan& p, const Cache& c, const Bufs& b,
                       cudaStream_t st, bool partialOnly = false, bool combineOnly = false) {
  unsigned storeLen = s.storeLen(), tailLen = TAIL_TOKENS, tps = p.tps, storeCap = s.T, tailCap = TAIL_CAP,
           splits = p.splits;
  float scoreScale = (float)(1.4426950408889634 / sqrt((double)D) / R);
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  if (!combineOnly) {
    void* args[] = {(void*)&b.q, (void*)&c.store, (void*)&c.tail, (void*)&b.partO, (void*)&b.partML,
                    &storeLen, &tailLen, &tps, &storeCap, &tailCap, &splits, &scoreScale};
    if (!v.pdl) {
      CK(cudaLaunchKernel((const void*)v.partial, dim3(p.splits, s.B, 1), dim3(128, 1, 1), args, v.smem, st));
    } else {
      cudaLaunchConfig_t cfg = {};
      cfg.gridDim = dim3(p.splits, s.B, 1);
      cfg.blockDim = dim3(128, 1, 1);
      cfg.dynamicSmemBytes = v.smem;
      cfg.stream = st;
      cfg.attrs = attr;
      cfg.numAttrs = 1;
      CK(cudaLaunchKernelExC(&cfg, (const void*)v.partial, args));
    }
  }
  if (partialOnly) return;
  float outScale = 1.0f / R;
  void* cargs[] = {(void*)&b.partO, (void*)&b.partML, (void*)&b.out, &splits, &outScale};
  if (!v.pdl) {
    CK(cudaLaunchKernel((const void*)v.combine, dim3(H * (D / 16), s.B, 1), dim3(256, 1, 1), cargs, 0, st));
  } else {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(H * (D / 16), s.B, 1);
    cfg.blockDim = dim3(256, 1, 1);
    cfg.dynamicSmemBytes = 0;
    cfg.stream = st;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    CK(cudaLaunchKernelExC(&cfg, (const void*)v.combine, cargs));
  }
}

static float h2f(unsigned short h) { return __half2float(__ushort_as_half(h)); }

// float64 reference: out [B, H, D].
static void reference(const Shape& s, const std::vector<unsigned short>& q, const std::vector<unsigned short>& store,
                      const std::vector<unsigned short>& tail, std::vector<double>& out) {
  out.assign((size_t)s.B * H * D, 0.0);
  std::vector<double> sc(s.T);
  for (int b = 0; b < s.B; ++b)
    for (int i = 0; i < H; ++i) {
      const unsigned short* qi = &q[((size_t)b * H + i) * D];
      double mx = -1e300;
      for (int j = 0; j < s.T; ++j) {
        const unsigned short* rec = j < s.storeLen() ? &store[((size_t)b * s.T + j) * REC]
                                                     : &tail[((size_t)b * TAIL_CAP + (j - s.storeLen())) * REC];
        double v = 0;
        for (int r = 0; r < R; ++r) {
          double dot = 0;
          for (int d = 0; d < D; ++d) dot += (double)h2f(qi[d]) * h2f(rec[OFF_BK + r * D + d]);
          v += h2f(rec[OFF_AK + i * R + r]) * dot;
        }
        v = v / R / sqrt((double)D);
        sc[j] = v;
        mx = std::max(mx, v);
      }
      double sum = 0;
      for (int j = 0; j < s.T; ++j) sum += (sc[j] = exp(sc[j] - mx));
      double* o = &out[((size_t)b * H + i) * D];
      for (int j = 0; j < s.T; ++j) {
        const unsigned short* rec = j < s.storeLen() ? &store[((size_t)b * s.T + j) * REC]
                                                     : &tail[((size_t)b * TAIL_CAP + (j - s.storeLen())) * REC];
        for (int r = 0; r < R; ++r) {
          double w = sc[j] / sum * h2f(rec[OFF_AV + i * R + r]) / R;
          for (int d = 0; d < D; ++d) o[d] += w * h2f(rec[OFF_BV + r * D + d]);
        }
      }
    }
}

static void fill(unsigned short* p, size_t n, uint32_t seed) {
  fill_f16<<<1024, 256>>>(p, n, seed);
  CK(cudaGetLastError());
}

static Cache newCache(const Shape& s, uint32_t seed) {
  Cache c;
  CK(cudaMalloc(&c.store, s.storeElems() * 2));
  CK(cudaMalloc(&c.tail, s.tailElems() * 2));
  fill(c.store, s.storeElems(), seed * 2 + 1);
  fill(c.tail, s.tailElems(), seed * 2 + 2);
  return c;
}
static void freeCache(Cache& c) {
  cudaFree(c.store);
  cudaFree(c.tail);
}
static Bufs newBufs(const Shape& s, int maxSplits, uint32_t seed) {
  Bufs b;
  CK(cudaMalloc(&b.q, (size_t)s.B * H * D * 2));
  CK(cudaMalloc(&b.partO, (size_t)s.B * maxSplits * H * D * 4));
  CK(cudaMalloc(&b.partML, (size_t)s.B * maxSplits * H * 2 * 4));
  CK(cudaMalloc(&b.out, (size_t)s.B * H * D * 2));
  fill(b.q, (size_t)s.B * H * D, seed);
  return b;
}
static void freeBufs(Bufs& b) {
  cudaFree(b.q);
  cudaFree(b.partO);
  cudaFree(b.partML);
  cudaFree(b.out);
}

static std::vector<Variant> variants;
static int failures = 0;

static void checkShape(const Shape& s, const std::vector<Plan>& plans, uint32_t seed) {
  Cache c = newCache(s, seed);
  int maxSplits = 1;
  for (auto& p : plans) maxSplits = std::max(maxSplits, p.splits);
  Bufs b = newBufs(s, maxSplits, seed + 77);
  CK(cudaDeviceSynchronize());
  std::vector<unsigned short> q((size_t)s.B * H * D), store(s.storeElems()), tail(s.tailElems());
  CK(cudaMemcpy(q.data(), b.q, q.size() * 2, cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(store.data(), c.store, store.size() * 2, cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(tail.data(), c.tail, tail.size() * 2, cudaMemcpyDeviceToHost));
  std::vector<double> ref;
  reference(s, q, store, tail, ref);
  double refNorm = 0;
  for (double v : ref) refNorm += v * v;
  refNorm = sqrt(refNorm);
  std::vector<unsigned short> out(ref.size());
  for (auto& v : variants)
    for (auto& p : plans) {
      CK(cudaMemset(b.out, 0xff, out.size() * 2));  // NaN poison
      CK(cudaMemset(b.partO, 0xff, (size_t)s.B * p.splits * H * D * 4));
      launchCall(v, s, p, c, b, 0);
      CK(cudaGetLastError());
      CK(cudaDeviceSynchronize());
      CK(cudaMemcpy(out.data(), b.out, out.size() * 2, cudaMemcpyDeviceToHost));
      double err = 0, maxAbs = 0;
      bool nan = false;
      for (size_t e = 0; e < out.size(); ++e) {
        double o = h2f(out[e]);
        if (!(o == o)) nan = true;
        err += (o - ref[e]) * (o - ref[e]);
        maxAbs = std::max(maxAbs, fabs(o - ref[e]));
      }
      double rel = sqrt(err) / refNorm;
      bool ok = !nan && rel < 2e-3;
      if (!ok) failures++;
      printf("check %-6s B=%-2d T=%-6d plan %4dx%-5d rel %.2e maxabs %.2e %s\n", v.name, s.B, s.T, p.splits, p.tps,
             rel, maxAbs, ok ? "ok" : "FAIL");
    }
  freeBufs(b);
  freeCache(c);
}

// Host time to issue `n` calls, then the calls queued behind a delay kernel: GPU ms per call.
template <typename F>
static double timeQueued(F call, int iters, bool* hidden) {
  cudaStream_t st = 0;
  for (int i = 0; i < 5; ++i) call(i);
  CK(cudaDeviceSynchronize());
  auto h0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) call(i);
  double issueMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - h0).count();
  CK(cudaDeviceSynchronize());
  double delayMs = std::max(1.0, 3 * issueMs + 0.5);
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  auto q0 = std::chrono::steady_clock::now();
  delay_k<<<1, 1, 0, st>>>((unsigned long long)(delayMs * 1e6));
  CK(cudaEventRecord(e0, st));
  for (int i = 0; i < iters; ++i) call(i);
  CK(cudaEventRecord(e1, st));
  double queuedMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - q0).count();
  CK(cudaEventSynchronize(e1));
  CK(cudaGetLastError());
  float ms;
  CK(cudaEventElapsedTime(&ms, e0, e1));
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  if (hidden) *hidden = queuedMs < delayMs;
  return ms / iters;
}

static double copyGBs = 0;

static void timeShape(const Shape& s, const std::vector<std::pair<const char*, Plan>>& plans, bool parts) {
  double bytes = s.cacheBytes();
  int n = std::max(1, std::min(64, (int)ceil(256.0 * 1048576 / bytes)));
  std::vector<Cache> caches;
  for (int i = 0; i < n; ++i) caches.push_back(newCache(s, 100 + i));
  int maxSplits = 1;
  for (auto& p : plans) maxSplits = std::max(maxSplits, p.second.splits);
  Bufs b = newBufs(s, maxSplits, 5);
  CK(cudaDeviceSynchronize());
  const int iters = 40;
  for (auto& v : variants)
    for (auto& pp : plans) {
      const Plan& p = pp.second;
      bool hid;
      double ms = timeQueued([&](int i) { launchCall(v, s, p, caches[i % n], b, 0); }, iters, &hid);
      double gbs = bytes / (ms * 1e-3) / 1e9;
      printf("time %-6s B=%-2d T=%-6d %-8s %4dx%-5d %.4f ms %6.0f GB/s %4.0f%% of copy rot %d%s\n", v.name, s.B, s.T,
             pp.first, p.splits, p.tps, ms, gbs, 100 * gbs / copyGBs, n, hid ? "" : " (host NOT hidden)");
      if (parts) {
        double pm = timeQueued([&](int i) { launchCall(v, s, p, caches[i % n], b, 0, true); }, iters, &hid);
        double cm = timeQueued([&](int i) { launchCall(v, s, p, caches[i % n], b, 0, false, true); }, iters, &hid);
        printf("parts %-6s B=%-2d T=%-6d %4dx%-5d partial alone %.4f ms, merge alone %.4f ms\n", v.name, s.B, s.T,
               p.splits, p.tps, pm, cm);
      }
    }
  // The same bytes read by a plain streaming kernel and copied, timed the same way.
  size_t n16 = (size_t)(bytes / 16);
  uint4* dst;
  unsigned* flag;
  CK(cudaMalloc(&dst, n16 * 16));
  CK(cudaMalloc(&flag, 4));
  bool hid;
  double rm = timeQueued([&](int i) { readk<<<132 * 4, 512>>>((const uint4*)caches[i % n].store, n16, flag); }, iters, &hid);
  double cm = timeQueued([&](int i) { copyk<<<132 * 8, 256>>>((const uint4*)caches[i % n].store, dst, n16); }, iters, &hid);
  double em = timeQueued([&](int) { empty_k<<<1, 32>>>(); }, iters, &hid);
  printf("base   B=%-2d T=%-6d read-only kernel %.4f ms (%5.0f GB/s, %3.0f%% of copy); copy kernel %.4f ms (%5.0f GB/s r+w); empty launch %.4f ms\n",
         s.B, s.T, rm, bytes / rm / 1e6, 100 * bytes / rm / 1e6 / copyGBs, cm, 2 * bytes / cm / 1e6, em);
  cudaFree(dst);
  cudaFree(flag);
  freeBufs(b);
  for (auto& c : caches) freeCache(c);
}

static void measureCopy() {
  size_t bytes = (size_t)1 << 30;
  uint4 *a, *bb;
  CK(cudaMalloc(&a, bytes));
  CK(cudaMalloc(&bb, bytes));
  fill((unsigned short*)a, bytes / 2, 9);
  CK(cudaDeviceSynchronize());
  bool hid;
  double ms = timeQueued([&](int) { copyk<<<132 * 16, 256>>>(a, bb, bytes / 16); }, 10, &hid);
  copyGBs = 2.0 * bytes / (ms * 1e-3) / 1e9;
  printf("copy bandwidth (1 GiB, read + write): %.0f GB/s\n", copyGBs);
  cudaFree(a);
  cudaFree(bb);
}

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "all";
  if (argc > 2) DIR = argv[2];
  CK(cudaFree(0));
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  printf("device %s, %d SMs, L2 %d MB\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20);
  struct V {
    const char* name;
    const char* p;
    const char* c;
    int stages;
    bool pdl;
  };
  // base: the decode as merged before (main); s2: the partial without shared-memory atomics, old
  // merge; s2c: with the one-pass merge; pdl: both launched as programmatic dependents (the package's launch now).
  std::vector<V> vs = {{"base", "k_base.cubin", "k_comb.cubin", 2, false},
                       {"s2", "k_s2.cubin", "k_comb.cubin", 2, false},
                       {"s2c", "k_s2.cubin", "k_comb2.cubin", 2, false},
                       {"pdl", "k_s2p.cubin", "k_comb2p.cubin", 2, true}};
  const char* only = getenv("VARIANTS");
  for (auto& x : vs) {
    if (only && !strstr(only, x.name)) continue;
    Variant v{x.name, x.p, x.c, x.stages, x.pdl};
    v.partial = loadKernel(x.p, "tpa_decode_partial_mma");
    v.combine = loadKernel(x.c, "tpa_decode_combine");
    v.smem = x.stages > 2 ? x.stages * TILE * 672 : 0;
    if (v.smem) CK(cudaFuncSetAttribute((const void*)v.partial, cudaFuncAttributeMaxDynamicSharedMemorySize, v.smem));
    variants.push_back(v);
  }
  if (mode == "prof") {
    for (int T : {4096, 32768}) {
      Shape s{1, T};
      Cache c = newCache(s, 3);
      Plan p = defaultPlan(1, T);
      Bufs b = newBufs(s, p.splits, 4);
      CK(cudaDeviceSynchronize());
      for (auto& v : variants) launchCall(v, s, p, c, b, 0);
      size_t n16 = (size_t)(s.cacheBytes() / 16);
      unsigned* flag;
      CK(cudaMalloc(&flag, 4));
      readk<<<132 * 4, 512>>>((const uint4*)c.store, n16, flag);
      CK(cudaDeviceSynchronize());
      freeBufs(b);
      freeCache(c);
    }
    return 0;
  }
  if (mode == "check" || mode == "all") {
    checkShape({1, 4096}, {defaultPlan(1, 4096), planTps(4096, 32), planTps(4096, 96), planTps(4096, 4096)}, 11);
    checkShape({1, 32768}, {defaultPlan(1, 32768), planTps(32768, 64)}, 12);
    checkShape({2, 1000}, {defaultPlan(2, 1000), planTps(1000, 64), planTps(1000, 1024)}, 13);
    checkShape({16, 4096}, {defaultPlan(16, 4096)}, 14);
    printf("checks: %d failures\n", failures);
  }
  if (mode == "time" || mode == "all") {
    measureCopy();
    for (int T : {4096, 32768, 131072}) {
      std::vector<std::pair<const char*, Plan>> plans = {{"default", defaultPlan(1, T)}};
      for (int tps : {64, 128, 256, 512})
        if (tps != plans[0].second.tps && (T / tps) <= 2048) plans.push_back({"tps", planTps(T, tps)});
      timeShape({1, T}, plans, true);
    }
    for (int T : {4096, 32768, 131072}) timeShape({16, T}, {{"default", defaultPlan(16, T)}}, false);
  }
  return failures ? 1 : 0;
}
