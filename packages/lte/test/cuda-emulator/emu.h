// Runs CUDA C kernels on the CPU for tests: each block is a set of std::threads sharing a
// std::barrier (__syncthreads) and function-static storage (__shared__). Blocks run one after
// another. Enough for kernels that use only threadIdx/blockIdx/blockDim/gridDim, __shared__,
// __syncthreads and <cmath> functions (no warp intrinsics or atomics).
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

struct emu_dim3 {
  unsigned x = 1, y = 1, z = 1;
};
thread_local emu_dim3 threadIdx, blockIdx;
emu_dim3 blockDim, gridDim;
std::barrier<>* emu_barrier = nullptr;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __shared__ static
#define __syncthreads() emu_barrier->arrive_and_wait()

template <class... A, size_t... I>
void emu_call(void (*f)(A...), void** args, std::index_sequence<I...>) {
  f(*static_cast<std::remove_reference_t<A>*>(args[I])...);
}

template <class... A>
int emu_main(void (*kernel)(A...), int argc, char** argv) {
  if (argc != 3) return 2;
  FILE* in = fopen(argv[1], "rb");
  if (!in) return 3;
  uint32_t head[9];
  if (fread(head, 4, 9, in) != 9) return 4;
  const uint32_t nIn = head[0], nOut = head[1], nScalars = head[2];
  gridDim = {head[3], head[4], head[5]};
  blockDim = {head[6], head[7], head[8]};
  std::vector<std::vector<unsigned char>> bufs(nIn + nOut);
  for (uint32_t b = 0; b < nIn + nOut; b++) {
    uint64_t bytes = 0;
    uint32_t zero = 0;
    if (fread(&bytes, 8, 1, in) != 1) return 5;
    bufs[b].resize(bytes + 16);
    if (b < nIn) {
      if (bytes && fread(bufs[b].data(), 1, bytes, in) != bytes) return 6;
    } else {
      if (fread(&zero, 4, 1, in) != 1) return 7;
      // Outputs that are not zero-initialised start as NaN so unwritten elements show up.
      if (zero) std::memset(bufs[b].data(), 0, bytes);
      else for (uint64_t i = 0; i + 4 <= bytes; i += 4) { float nan = NAN; std::memcpy(&bufs[b][i], &nan, 4); }
    }
  }
  std::vector<uint32_t> scalars(nScalars + 1);
  if (nScalars && fread(scalars.data(), 4, nScalars, in) != nScalars) return 8;
  fclose(in);
  if (sizeof...(A) != nIn + nOut + nScalars) {
    fprintf(stderr, "kernel takes %zu arguments, the launch has %u\n", sizeof...(A), nIn + nOut + nScalars);
    return 9;
  }
  std::vector<void*> ptrs(nIn + nOut);
  std::vector<void*> args(nIn + nOut + nScalars);
  for (uint32_t b = 0; b < nIn + nOut; b++) {
    ptrs[b] = bufs[b].data();
    args[b] = &ptrs[b];
  }
  for (uint32_t s = 0; s < nScalars; s++) args[nIn + nOut + s] = &scalars[s];
  const unsigned nThreads = blockDim.x * blockDim.y * blockDim.z;
  for (unsigned bz = 0; bz < gridDim.z; bz++)
    for (unsigned by = 0; by < gridDim.y; by++)
      for (unsigned bx = 0; bx < gridDim.x; bx++) {
        std::barrier<> bar(nThreads);
        emu_barrier = &bar;
        std::vector<std::thread> threads;
        threads.reserve(nThreads);
        for (unsigned t = 0; t < nThreads; t++)
          threads.emplace_back([&, t] {
            threadIdx = {t % blockDim.x, (t / blockDim.x) % blockDim.y, t / (blockDim.x * blockDim.y)};
            blockIdx = {bx, by, bz};
            emu_call(kernel, args.data(), std::index_sequence_for<A...>{});
          });
        for (auto& th : threads) th.join();
      }
  FILE* out = fopen(argv[2], "wb");
  if (!out) return 10;
  for (uint32_t b = nIn; b < nIn + nOut; b++) fwrite(bufs[b].data(), 1, bufs[b].size() - 16, out);
  fclose(out);
  return 0;
}
