// A stand-in for libcuda, libnvrtc and libcublasLt, for testing the FFI plumbing on machines
// without a GPU: "device" memory is host memory, launches are recorded (not run), NVRTC returns
// a dummy image, and cuBLASLt computes float32 GEMMs on the host (column-major, strided batches)
// so the row-major mapping of the backend's matmul is checked for real. Compiled into three
// shared objects by test/ffi-fake.test.ts.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

// ---------------------------------------------------------------- driver
static int launches = 0;
static uint64_t last_params[32];
static unsigned last_grid[3], last_block[3], last_smem;
static long live_allocs = 0;

EXPORT int fake_launch_count(void) { return launches; }
EXPORT uint64_t fake_last_param(int i) { return last_params[i]; }
EXPORT long fake_live_allocs(void) { return live_allocs; }

EXPORT int cuInit(unsigned f) { (void)f; return 0; }
EXPORT int cuDriverGetVersion(int* v) { *v = 13000; return 0; }
EXPORT int cuDeviceGetCount(int* n) { *n = 1; return 0; }
EXPORT int cuDeviceGet(int* d, int o) { *d = o; return o == 0 ? 0 : 101; }
EXPORT int cuDeviceGetName(char* name, int len, int dev) { (void)dev; snprintf(name, len, "Fake H100"); return 0; }
EXPORT int cuDeviceGetAttribute(int* v, int attr, int dev) {
  (void)dev;
  switch (attr) {
    case 75: *v = 9; break;
    case 76: *v = 0; break;
    case 16: *v = 132; break;
    case 97: *v = 232448; break;
    case 13: *v = 1980000; break;
    case 36: *v = 2619000; break;
    case 37: *v = 5120; break;
    default: *v = 0;
  }
  return 0;
}
EXPORT int cuDeviceTotalMem_v2(uint64_t* b, int d) { (void)d; *b = 80ull << 30; return 0; }
EXPORT int cuDevicePrimaryCtxRetain(uint64_t* c, int d) { (void)d; *c = 0xc0ffee; return 0; }
EXPORT int cuDevicePrimaryCtxRelease_v2(int d) { (void)d; return 0; }
EXPORT int cuCtxSetCurrent(uint64_t c) { return c == 0xc0ffee ? 0 : 201; }
EXPORT int cuCtxSynchronize(void) { return 0; }
EXPORT int cuMemAlloc_v2(uint64_t* p, size_t n) {
  if (n > (1ull << 34)) return 2;
  void* m = aligned_alloc(256, (n + 255) / 256 * 256);
  memset(m, 0xAB, n);  // poison: unwritten outputs show
  *p = (uint64_t)m;
  live_allocs++;
  return 0;
}
EXPORT int cuMemFree_v2(uint64_t p) { free((void*)p); live_allocs--; return 0; }
EXPORT int cuMemGetInfo_v2(uint64_t* f, uint64_t* t) { *f = 70ull << 30; *t = 80ull << 30; return 0; }
EXPORT int cuMemcpyHtoDAsync_v2(uint64_t d, const void* s, size_t n, uint64_t st) { (void)st; memcpy((void*)d, s, n); return 0; }
EXPORT int cuMemcpyDtoHAsync_v2(void* d, uint64_t s, size_t n, uint64_t st) { (void)st; memcpy(d, (void*)s, n); return 0; }
EXPORT int cuMemcpyDtoDAsync_v2(uint64_t d, uint64_t s, size_t n, uint64_t st) { (void)st; memmove((void*)d, (void*)s, n); return 0; }
EXPORT int cuMemsetD8Async(uint64_t d, uint8_t v, size_t n, uint64_t st) { (void)st; memset((void*)d, v, n); return 0; }
EXPORT int cuMemsetD16Async(uint64_t d, uint16_t v, size_t n, uint64_t st) {
  (void)st;
  for (size_t i = 0; i < n; i++) ((uint16_t*)d)[i] = v;
  return 0;
}
EXPORT int cuMemsetD32Async(uint64_t d, uint32_t v, size_t n, uint64_t st) {
  (void)st;
  for (size_t i = 0; i < n; i++) ((uint32_t*)d)[i] = v;
  return 0;
}
EXPORT int cuStreamCreate(uint64_t* s, unsigned f) { *s = 0x5000 + f; return 0; }
EXPORT int cuStreamDestroy_v2(uint64_t s) { (void)s; return 0; }
EXPORT int cuStreamSynchronize(uint64_t s) { return s == 0x5001 ? 0 : 400; }
EXPORT int cuEventCreate(uint64_t* e, unsigned f) { static uint64_t n = 0x7000; (void)f; *e = ++n; return 0; }
EXPORT int cuEventDestroy_v2(uint64_t e) { (void)e; return 0; }
EXPORT int cuEventRecord(uint64_t e, uint64_t s) { (void)e; return s == 0x5001 ? 0 : 400; }
EXPORT int cuEventSynchronize(uint64_t e) { (void)e; return 0; }
EXPORT int cuEventElapsedTime_v2(float* ms, uint64_t a, uint64_t b) { (void)a; (void)b; *ms = 1.5f; return 0; }
EXPORT int cuModuleLoadData(uint64_t* m, const void* img) { *m = strncmp((const char*)img, "CUBIN", 5) == 0 ? 0x900 : 0; return *m ? 0 : 200; }
EXPORT int cuModuleUnload(uint64_t m) { (void)m; return 0; }
EXPORT int cuModuleGetFunction(uint64_t* f, uint64_t m, const char* name) { (void)m; *f = 0xf00 + strlen(name); return 0; }
EXPORT int cuFuncSetAttribute(uint64_t f, int a, int v) { (void)f; (void)a; (void)v; return 0; }
EXPORT int cuFuncGetAttribute(int* v, int a, uint64_t f) { (void)a; (void)f; *v = 0; return 0; }
EXPORT int cuLaunchKernel(uint64_t f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                          unsigned smem, uint64_t st, void** params, void** extra) {
  (void)f; (void)extra;
  if (st != 0x5001) return 400;
  launches++;
  last_grid[0] = gx; last_grid[1] = gy; last_grid[2] = gz;
  last_block[0] = bx; last_block[1] = by; last_block[2] = bz;
  last_smem = smem;
  for (int i = 0; i < 4; i++) last_params[i] = *(uint64_t*)params[i];
  return 0;
}
EXPORT int cuGetErrorName(int e, const char** s) {
  *s = e == 2 ? "CUDA_ERROR_OUT_OF_MEMORY" : e == 400 ? "CUDA_ERROR_INVALID_HANDLE" : "CUDA_ERROR_UNKNOWN";
  return 0;
}

// ---------------------------------------------------------------- NVRTC
static const char* last_options = "";
EXPORT int nvrtcVersion(int* a, int* b) { *a = 13; *b = 0; return 0; }
EXPORT int nvrtcGetNumSupportedArchs(int* n) { *n = 3; return 0; }
EXPORT int nvrtcGetSupportedArchs(int* a) { a[0] = 80; a[1] = 90; a[2] = 100; return 0; }
EXPORT int nvrtcCreateProgram(uint64_t* p, const char* src, const char* name, int nh, const char** h, const char** inc) {
  (void)name; (void)nh; (void)h; (void)inc;
  *p = (uint64_t)strdup(src);
  return 0;
}
EXPORT int nvrtcCompileProgram(uint64_t p, int n, const char** opts) {
  static char buf[4096];
  buf[0] = 0;
  for (int i = 0; i < n; i++) { strncat(buf, opts[i], sizeof buf - strlen(buf) - 2); strcat(buf, " "); }
  last_options = buf;
  return strstr((const char*)p, "syntax error") ? 6 : 0;
}
EXPORT const char* fake_last_options(void) { return last_options; }
EXPORT int nvrtcGetProgramLogSize(uint64_t p, size_t* n) { (void)p; *n = 12; return 0; }
EXPORT int nvrtcGetProgramLog(uint64_t p, char* log) { (void)p; memcpy(log, "fake log ok", 12); return 0; }
EXPORT int nvrtcGetCUBINSize(uint64_t p, size_t* n) { (void)p; *n = 16; return 0; }
EXPORT int nvrtcGetCUBIN(uint64_t p, char* c) { (void)p; memcpy(c, "CUBINxxxxxxxxxxx", 16); return 0; }
EXPORT int nvrtcDestroyProgram(uint64_t* p) { free((void*)*p); *p = 0; return 0; }
EXPORT const char* nvrtcGetErrorString(int e) { return e == 6 ? "NVRTC_ERROR_COMPILATION" : "NVRTC_ERROR"; }

// ---------------------------------------------------------------- cuBLASLt
typedef struct { int type; uint64_t rows, cols; int64_t ld; int batch; int64_t stride; } Layout;
typedef struct { int compute, scale, ta, tb; } Desc;
EXPORT int cublasLtCreate(uint64_t* h) { *h = 0x1100; return 0; }
EXPORT int cublasLtDestroy(uint64_t h) { (void)h; return 0; }
EXPORT size_t cublasLtGetVersion(void) { return 130000; }
EXPORT const char* cublasLtGetStatusName(int s) { return s == 15 ? "CUBLAS_STATUS_NOT_SUPPORTED" : "CUBLAS_STATUS_INVALID_VALUE"; }
EXPORT int cublasLtMatmulDescCreate(uint64_t* d, int compute, int scale) {
  Desc* x = calloc(1, sizeof(Desc));
  x->compute = compute; x->scale = scale;
  *d = (uint64_t)x;
  return 0;
}
EXPORT int cublasLtMatmulDescDestroy(uint64_t d) { free((void*)d); return 0; }
EXPORT int cublasLtMatmulDescSetAttribute(uint64_t d, int attr, const void* buf, size_t n) {
  Desc* x = (Desc*)d;
  if (n != 4) return 7;
  if (attr == 3) x->ta = *(const int*)buf;
  else if (attr == 4) x->tb = *(const int*)buf;
  else return 7;
  return 0;
}
EXPORT int cublasLtMatrixLayoutCreate(uint64_t* l, int type, uint64_t rows, uint64_t cols, int64_t ld) {
  Layout* x = calloc(1, sizeof(Layout));
  x->type = type; x->rows = rows; x->cols = cols; x->ld = ld; x->batch = 1;
  *l = (uint64_t)x;
  return (int64_t)rows > ld ? 7 : 0;
}
EXPORT int cublasLtMatrixLayoutDestroy(uint64_t l) { free((void*)l); return 0; }
EXPORT int cublasLtMatrixLayoutSetAttribute(uint64_t l, int attr, const void* buf, size_t n) {
  Layout* x = (Layout*)l;
  if (attr == 5 && n == 4) x->batch = *(const int*)buf;
  else if (attr == 6 && n == 8) x->stride = *(const int64_t*)buf;
  else return 7;
  return 0;
}
EXPORT int cublasLtMatmulPreferenceCreate(uint64_t* p) { *p = 0x2200; return 0; }
EXPORT int cublasLtMatmulPreferenceDestroy(uint64_t p) { (void)p; return 0; }
EXPORT int cublasLtMatmulPreferenceSetAttribute(uint64_t p, int a, const void* b, size_t n) { (void)p; (void)b; return a == 1 && n == 8 ? 0 : 7; }
EXPORT int cublasLtMatmulAlgoGetHeuristic(uint64_t h, uint64_t d, uint64_t a, uint64_t b, uint64_t c, uint64_t dd, uint64_t p,
                                          int req, void* results, int* ret) {
  (void)h; (void)d; (void)b; (void)c; (void)dd; (void)p; (void)req;
  // Only float32 is computed by this fake; other types get "no algorithm" (the SIMT fallback).
  if (((Layout*)a)->type != 0) { *ret = 0; return 15; }
  memset(results, 0, 96);
  *(uint64_t*)((char*)results + 64) = 1024;  // workspace bytes
  *ret = 1;
  return 0;
}
// D = op(A) op(B), column-major, float32, strided batches.
EXPORT int cublasLtMatmul(uint64_t h, uint64_t desc, const void* alpha, uint64_t A, uint64_t Ad, uint64_t B, uint64_t Bd,
                          const void* beta, uint64_t C, uint64_t Cd, uint64_t D, uint64_t Dd, const void* algo,
                          uint64_t ws, size_t wsn, uint64_t st) {
  (void)h; (void)C; (void)Cd; (void)algo; (void)ws; (void)wsn;
  if (st != 0x5001 || *(const float*)alpha != 1.f || *(const float*)beta != 0.f) return 7;
  Desc* x = (Desc*)desc;
  Layout *la = (Layout*)Ad, *lb = (Layout*)Bd, *ld = (Layout*)Dd;
  const int M = (int)ld->rows, N = (int)ld->cols;
  const int K = x->ta ? (int)la->rows : (int)la->cols;
  for (int bt = 0; bt < ld->batch; bt++) {
    const float* a = (const float*)A + bt * la->stride;
    const float* b = (const float*)B + bt * lb->stride;
    float* d = (float*)D + bt * ld->stride;
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++) {
        double s = 0;
        for (int k = 0; k < K; k++) {
          const float av = x->ta ? a[k + i * la->ld] : a[i + k * la->ld];
          const float bv = x->tb ? b[j + k * lb->ld] : b[k + j * lb->ld];
          s += (double)av * bv;
        }
        d[i + j * ld->ld] = (float)s;
      }
  }
  return 0;
}
