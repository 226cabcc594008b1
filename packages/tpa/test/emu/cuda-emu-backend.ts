/**
 * A test backend, 'cuda-emu': the CPU reference backend's storage and core kernels, plus a
 * runProgram that compiles the package's CUDA C programs with g++ against test/emu/tpa_emu.h
 * (threads as fibers, warp collectives and mma emulated) and runs them on the CPU. With it the
 * CUDA kernels run through the package's real kernel functions and launch plans on a machine
 * without a GPU. Compiled programs are cached per source for the life of the process.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  type BackendInfo,
  bfloat16BitsToFloat32,
  byteSize,
  CpuBackend,
  type DType,
  float16BitsToFloat32,
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
  getKernel,
  listKernels,
  type ProgramSpec,
  registerCpuKernels,
  registerKernel,
  type TensorInfo,
  type TypedArray,
} from '@attnkit/core'

export const EMU_NAME = 'cuda-emu'
export const EMU_MULTIPROCESSORS = 4
const HEADER = join(import.meta.dirname, 'tpa_emu.h')

export function gxxAvailable(): boolean {
  return spawnSync('g++', ['--version']).status === 0
}

function toDeviceBytes(values: TypedArray, dtype: DType): Uint8Array {
  if (dtype === 'float16' || dtype === 'bfloat16') {
    const bits = new Uint16Array(values.length)
    const conv = dtype === 'float16' ? float32ToFloat16Bits : float32ToBfloat16Bits
    for (let i = 0; i < values.length; i++) bits[i] = conv(values[i])
    return new Uint8Array(bits.buffer)
  }
  if (dtype === 'float32') return new Uint8Array(Float32Array.from(values).buffer)
  if (dtype === 'int32') return new Uint8Array(Int32Array.from(values).buffer)
  if (dtype === 'uint32') return new Uint8Array(Uint32Array.from(values).buffer)
  throw new Error(`cuda-emu: dtype ${dtype} has no device layout here`)
}

function fromDeviceBytes(bytes: Uint8Array, dtype: DType, n: number): TypedArray {
  const buf = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)
  if (dtype === 'float16' || dtype === 'bfloat16') {
    const bits = new Uint16Array(buf, 0, n)
    const conv = dtype === 'float16' ? float16BitsToFloat32 : bfloat16BitsToFloat32
    return Float32Array.from(bits, (b) => conv(b))
  }
  if (dtype === 'float32') return new Float32Array(buf, 0, n).slice()
  if (dtype === 'int32') return new Int32Array(buf, 0, n).slice()
  if (dtype === 'uint32') return new Uint32Array(buf, 0, n).slice()
  throw new Error(`cuda-emu: dtype ${dtype} has no device layout here`)
}

function harness(spec: ProgramSpec): string {
  const nIn = spec.inputs.length
  const nOut = spec.outputs.length
  const scalars = spec.scalars ?? []
  const lines: string[] = [
    '#include <stdio.h>',
    '#include <stdlib.h>',
    'struct AnyPtr { void* p; template <class T> operator T*() const { return static_cast<T*>(p); } };',
    'static void* load(const char* path) {',
    '  FILE* f = fopen(path, "rb"); fseek(f, 0, SEEK_END); long n = ftell(f); fseek(f, 0, SEEK_SET);',
    '  void* m = aligned_alloc(256, ((size_t)n + 256) / 256 * 256); if (fread(m, 1, n, f) != (size_t)n) abort(); fclose(f); return m;',
    '}',
    'int main(int argc, char** argv) {',
    '  (void)argc; int k = 1;',
    '  dim3 g{(unsigned)atoi(argv[k]), (unsigned)atoi(argv[k + 1]), (unsigned)atoi(argv[k + 2])}; k += 3;',
    '  dim3 b{(unsigned)atoi(argv[k]), (unsigned)atoi(argv[k + 1]), (unsigned)atoi(argv[k + 2])}; k += 3;',
  ]
  for (let i = 0; i < nIn; i++) lines.push(`  void* in${i} = load(argv[k++]);`)
  for (let i = 0; i < nOut; i++) {
    lines.push(`  const char* outPath${i} = argv[k++]; size_t outBytes${i} = strtoull(argv[k++], 0, 10);`)
    // Poison: bytes a kernel never writes show up as garbage.
    lines.push(
      `  void* out${i} = aligned_alloc(256, (outBytes${i} + 256) / 256 * 256); memset(out${i}, 0xAB, outBytes${i});`,
    )
  }
  scalars.forEach((s, i) => {
    if (s.type === 'f32')
      lines.push(
        `  unsigned bits${i} = (unsigned)strtoul(argv[k++], 0, 10); float s${i}; memcpy(&s${i}, &bits${i}, 4);`,
      )
    else if (s.type === 'i32') lines.push(`  int s${i} = (int)strtol(argv[k++], 0, 10);`)
    else lines.push(`  unsigned s${i} = (unsigned)strtoul(argv[k++], 0, 10);`)
  })
  const args = [
    ...Array.from({ length: nIn }, (_, i) => `AnyPtr{in${i}}`),
    ...Array.from({ length: nOut }, (_, i) => `AnyPtr{out${i}}`),
    ...scalars.map((_, i) => `s${i}`),
  ]
  lines.push(`  emu::run_grid(g, b, [&]() { ${spec.entryPoint}(${args.join(', ')}); });`)
  for (let i = 0; i < nOut; i++)
    lines.push(
      `  { FILE* f = fopen(outPath${i}, "wb"); if (fwrite(out${i}, 1, outBytes${i}, f) != outBytes${i}) abort(); fclose(f); }`,
    )
  lines.push('  return 0;', '}')
  return lines.join('\n')
}

export class CudaEmuBackend extends CpuBackend {
  private readonly dir = mkdtempSync(join(tmpdir(), 'tpa-cuda-emu-'))
  private readonly binaries = new Map<string, string>()
  programsRun = 0

  constructor() {
    super()
    Object.defineProperty(this, 'name', { value: EMU_NAME })
    // The CPU reference kernels serve the core ops on this backend's (CPU) storage.
    registerCpuKernels()
    for (const kernelName of listKernels('cpu')) {
      const k = getKernel(kernelName, 'cpu')!
      registerKernel({ kernelName, backendName: EMU_NAME, kernelFunc: k.kernelFunc })
    }
  }

  /**
   * Reports a small GPU (EMU_MULTIPROCESSORS SMs), so the decode's SM-derived split plan runs
   * here as it does on a real device, with split counts small enough to emulate.
   */
  override info(): BackendInfo {
    const cpu = super.info()
    return { ...cpu, details: { ...cpu.details, multiprocessors: EMU_MULTIPROCESSORS } }
  }

  runProgram(spec: ProgramSpec): TensorInfo[] {
    if (spec.language !== 'cuda') throw new Error(`cuda-emu: runs cuda programs, got ${spec.language}`)
    const source = `#define TPA_EMULATE 1\n#include "${HEADER}"\n${spec.source}\n${harness(spec)}\n`
    const key = createHash('sha256').update(source).digest('hex').slice(0, 16)
    let bin = this.binaries.get(key)
    if (!bin) {
      const file = join(this.dir, `${key}.cpp`)
      bin = join(this.dir, key)
      writeFileSync(file, source)
      try {
        execFileSync('g++', ['-std=c++17', '-O1', '-w', '-o', bin, file], { stdio: 'pipe', encoding: 'utf8' })
      } catch (e) {
        throw new Error(
          `cuda-emu: g++ failed on ${spec.name} (${spec.entryPoint}):\n${(e as { stderr?: string }).stderr}`,
        )
      }
      this.binaries.set(key, bin)
    }
    const argv: string[] = [...spec.grid.map(String), ...(spec.block ?? [256, 1, 1]).map(String)]
    spec.inputs.forEach((t, i) => {
      const path = join(this.dir, `in${i}.bin`)
      writeFileSync(path, toDeviceBytes(this.values(t), t.dtype))
      argv.push(path)
    })
    const outPaths = spec.outputs.map((o, i) => {
      const path = join(this.dir, `out${i}.bin`)
      argv.push(path, String(o.shape.reduce((a, d) => a * d, 1) * byteSize(o.dtype)))
      return path
    })
    for (const s of spec.scalars ?? []) {
      if (s.type === 'f32') argv.push(String(new Uint32Array(Float32Array.of(s.value).buffer)[0]))
      else argv.push(String(s.value))
    }
    const run = spawnSync(bin, argv, { encoding: 'utf8' })
    if (run.status !== 0) throw new Error(`cuda-emu: ${spec.name} failed (${run.status}): ${run.stderr}`)
    this.programsRun++
    return spec.outputs.map((o, i) => {
      const n = o.shape.reduce((a, d) => a * d, 1)
      const values = fromDeviceBytes(new Uint8Array(readFileSync(outPaths[i])), o.dtype, n)
      return this.output(values, [...o.shape], o.dtype)
    })
  }

  override dispose(): void {
    if (existsSync(this.dir)) rmSync(this.dir, { recursive: true, force: true })
  }
}
