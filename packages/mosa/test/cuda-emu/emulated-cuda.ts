/**
 * A test-only backend named 'cuda' that runs the package's CUDA C kernels on the CPU: each
 * ProgramSpec is compiled with g++ against prelude.h (cooperative fibers for threads, statics for
 * shared memory) and run block by block. Core ops run on the CPU reference kernels. It checks the
 * kernels' indexing, barriers and maths without a GPU; speed means nothing here.
 */
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  CpuBackend,
  type DType,
  getKernel,
  listKernels,
  type ProgramSpec,
  registerCpuKernels,
  registerKernel,
  sizeOf,
  type TensorInfo,
} from '@attnkit/core'

const here = dirname(fileURLToPath(import.meta.url))
const workDir = join(tmpdir(), 'attnkit-mosa-cuda-emu')

/** Why the emulator cannot run here, or undefined when it can. */
export function emulatorUnavailable(): string | undefined {
  try {
    execFileSync('g++', ['--version'], { stdio: 'ignore' })
    return undefined
  } catch {
    return 'g++ is not on PATH (the CUDA emulator compiles kernels with it)'
  }
}

const cType = (dtype: DType) => {
  if (dtype === 'float32') return 'float'
  if (dtype === 'int32') return 'int'
  throw new Error(`cuda emulator: dtype ${dtype} is not supported`)
}

function harness(spec: ProgramSpec): string {
  const nIn = spec.inputs.length
  const args = [
    ...spec.inputs.map((t, i) => `(${cType(t.dtype)}*)emu_buf[${i}]`),
    ...spec.outputs.map((t, i) => `(${cType(t.dtype)}*)emu_buf[${nIn + i}]`),
    ...(spec.scalars ?? []).map(
      (s, i) => `emu_scalar[${i}].${s.type === 'f32' ? 'f' : s.type === 'i32' ? 'i' : 'u'}`,
    ),
  ]
  return `
static std::vector<void*> emu_buf;
union EmuScalar { float f; int i; unsigned u; };
static std::vector<EmuScalar> emu_scalar;
static void emu_fiber() {
  ${spec.entryPoint}(${args.join(', ')});
  if (emu_cur + 1 < (int)emu_threads.size()) { emu_cur++; setcontext(&emu_threads[emu_cur].ctx); }
  setcontext(&emu_main);
}
int main(int argc, char** argv) {
  FILE* in = fopen(argv[1], "rb");
  unsigned hdr[8];
  if (fread(hdr, 4, 8, in) != 8) return 2;
  gridDim.x = hdr[0]; gridDim.y = hdr[1]; gridDim.z = hdr[2];
  blockDim.x = hdr[3]; blockDim.y = hdr[4]; blockDim.z = hdr[5];
  unsigned nBuf = hdr[6], nScalar = hdr[7];
  std::vector<unsigned long long> sizes(nBuf);
  for (unsigned i = 0; i < nBuf; ++i) {
    unsigned long long n; unsigned fillNaN;
    if (fread(&n, 8, 1, in) != 1 || fread(&fillNaN, 4, 1, in) != 1) return 2;
    sizes[i] = n;
    void* p = malloc(n ? n : 4);
    if (fillNaN == 2) { if (fread(p, 1, n, in) != n) return 2; }
    else if (fillNaN == 1) { for (unsigned long long j = 0; j < n / 4; ++j) ((unsigned*)p)[j] = 0x7fc00000u; }
    else memset(p, 0, n);
    emu_buf.push_back(p);
  }
  emu_scalar.resize(nScalar);
  if (nScalar && fread(emu_scalar.data(), 4, nScalar, in) != nScalar) return 2;
  fclose(in);
  const int nThreads = blockDim.x * blockDim.y * blockDim.z;
  emu_threads.resize(nThreads);
  const size_t stack = 1 << 16;
  std::vector<char> stacks((size_t)nThreads * stack);
  for (unsigned bz = 0; bz < gridDim.z; ++bz)
    for (unsigned by = 0; by < gridDim.y; ++by)
      for (unsigned bx = 0; bx < gridDim.x; ++bx) {
        blockIdx.x = bx; blockIdx.y = by; blockIdx.z = bz;
        for (int t = 0; t < nThreads; ++t) {
          EmuThread& th = emu_threads[t];
          th.idx.x = t % blockDim.x; th.idx.y = (t / blockDim.x) % blockDim.y; th.idx.z = t / (blockDim.x * blockDim.y);
          getcontext(&th.ctx);
          th.ctx.uc_stack.ss_sp = stacks.data() + (size_t)t * stack;
          th.ctx.uc_stack.ss_size = stack;
          th.ctx.uc_link = nullptr;
          makecontext(&th.ctx, emu_fiber, 0);
        }
        emu_cur = 0;
        swapcontext(&emu_main, &emu_threads[0].ctx);
      }
  FILE* out = fopen(argv[2], "wb");
  for (unsigned i = ${nIn}; i < nBuf; ++i) fwrite(emu_buf[i], 1, sizes[i], out);
  fclose(out);
  return 0;
}
`
}

export class EmulatedCudaBackend extends CpuBackend {
  programs = 0
  /** Entry points run so far (tests check which route a setting took). */
  readonly entries = new Set<string>()

  constructor() {
    super()
    Object.defineProperty(this, 'name', { value: 'cuda' })
    // Core ops: the CPU reference kernels, under this backend's name.
    registerCpuKernels()
    for (const kernelName of listKernels('cpu')) {
      const k = getKernel(kernelName, 'cpu')!
      registerKernel({ ...k, backendName: 'cuda' })
    }
  }

  runProgram(spec: ProgramSpec): TensorInfo[] {
    if (spec.language !== 'cuda') throw new Error(`cuda emulator: program '${spec.name}' is ${spec.language}`)
    this.programs++
    this.entries.add(spec.entryPoint)
    const source = `${readFileSync(join(here, 'prelude.h'), 'utf8')}\n${spec.source}\n${harness(spec)}`
    const key = createHash('sha1').update(source).digest('hex').slice(0, 16)
    mkdirSync(workDir, { recursive: true })
    const bin = join(workDir, `${spec.entryPoint}-${key}`)
    if (!existsSync(bin)) {
      const src = `${bin}.cpp`
      writeFileSync(src, source)
      execFileSync('g++', ['-O1', '-std=c++17', '-w', '-o', bin, src], {
        stdio: ['ignore', 'ignore', 'pipe'],
      })
    }
    const block = spec.block ?? [256, 1, 1]
    const scalars = spec.scalars ?? []
    const parts: Buffer[] = []
    const hdr = new Uint32Array([
      ...spec.grid,
      ...block,
      spec.inputs.length + spec.outputs.length,
      scalars.length,
    ])
    parts.push(Buffer.from(hdr.buffer))
    const entry = (bytes: number, mode: number) => {
      const b = Buffer.alloc(12)
      b.writeBigUInt64LE(BigInt(bytes), 0)
      b.writeUInt32LE(mode, 8)
      return b
    }
    for (const t of spec.inputs) {
      const v = this.values(t)
      const arr = t.dtype === 'int32' ? Int32Array.from(v) : Float32Array.from(v)
      parts.push(entry(arr.byteLength, 2), Buffer.from(arr.buffer))
    }
    for (const o of spec.outputs) parts.push(entry(sizeOf(o.shape) * 4, o.zeroInit ? 0 : 1))
    const sc = new DataView(new ArrayBuffer(4 * scalars.length))
    scalars.forEach((s, i) => {
      if (s.type === 'f32') sc.setFloat32(i * 4, s.value, true)
      else if (s.type === 'i32') sc.setInt32(i * 4, s.value, true)
      else sc.setUint32(i * 4, s.value, true)
    })
    parts.push(Buffer.from(sc.buffer))
    const inFile = join(workDir, `in-${process.pid}.bin`)
    const outFile = join(workDir, `out-${process.pid}.bin`)
    writeFileSync(inFile, Buffer.concat(parts))
    execFileSync(bin, [inFile, outFile], { stdio: 'ignore' })
    const raw = readFileSync(outFile)
    let offset = 0
    return spec.outputs.map((o) => {
      const n = sizeOf(o.shape)
      const bytes = raw.subarray(offset, offset + n * 4)
      offset += n * 4
      const copy = new Uint8Array(bytes).buffer
      const values = o.dtype === 'int32' ? new Int32Array(copy) : new Float32Array(copy)
      return this.output(values, [...o.shape], o.dtype)
    })
  }
}
