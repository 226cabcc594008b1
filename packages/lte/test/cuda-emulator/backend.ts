import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  type Backend,
  type BackendInfo,
  type BackendMemory,
  byteSize,
  type DataId,
  type DeviceTiming,
  type DType,
  type ProgramSpec,
  type Shape,
  type TensorInfo,
  type TypedArray,
} from '@attnkit/core'

const here = dirname(fileURLToPath(import.meta.url))

/** Why the emulator cannot run here, or '' when g++ with C++20 is available. */
export function emulatorUnavailable(): string {
  try {
    execFileSync('g++', ['--version'], { stdio: 'ignore' })
    return ''
  } catch {
    return 'g++ is not on PATH (the CUDA emulator compiles kernels as C++20 with std::thread)'
  }
}

interface Stored {
  bytes: Uint8Array
  dtype: DType
  size: number
}

/**
 * A test backend named 'cuda' that runs ProgramSpec CUDA C sources on the CPU through emu.h.
 * It stores data on the host and implements only what this package's CUDA kernels need.
 */
export class EmulatedCudaBackend implements Backend {
  readonly name = 'cuda'
  private live = 0
  private liveBytes = 0
  private readonly dir = join(tmpdir(), 'attnkit-lte-cuda-emu')
  /** Programs launched, in order (name and grid), for tests to inspect. */
  readonly launches: { name: string; grid: readonly number[] }[] = []

  constructor() {
    mkdirSync(this.dir, { recursive: true })
  }

  info(): BackendInfo {
    return { name: this.name, device: 'CPU emulation of CUDA C (test only)', details: {}, features: [] }
  }
  supportsDType(dtype: DType): boolean {
    return dtype === 'float32' || dtype === 'int32' || dtype === 'uint32' || dtype === 'bool'
  }
  write(values: TypedArray, _shape: Shape, dtype: DType): DataId {
    const host =
      dtype === 'float32'
        ? Float32Array.from(values as ArrayLike<number>)
        : dtype === 'bool'
          ? Uint8Array.from(values as ArrayLike<number>)
          : dtype === 'uint32'
            ? Uint32Array.from(values as ArrayLike<number>)
            : Int32Array.from(values as ArrayLike<number>)
    return this.store(new Uint8Array(host.buffer.slice(0)), dtype, host.length)
  }
  private store(bytes: Uint8Array, dtype: DType, size: number): Stored {
    this.live++
    this.liveBytes += bytes.byteLength
    return { bytes, dtype, size }
  }
  async read(dataId: DataId): Promise<TypedArray> {
    return this.readSync(dataId)
  }
  readSync(dataId: DataId): TypedArray {
    const s = dataId as Stored
    const buf = s.bytes.buffer.slice(s.bytes.byteOffset, s.bytes.byteOffset + s.bytes.byteLength)
    if (s.dtype === 'float32') return new Float32Array(buf)
    if (s.dtype === 'bool') return new Uint8Array(buf)
    if (s.dtype === 'uint32') return new Uint32Array(buf)
    return new Int32Array(buf)
  }
  release(dataId: DataId): void {
    const s = dataId as Stored
    this.live--
    this.liveBytes -= s.bytes.byteLength
  }
  memory(): BackendMemory {
    return { liveBuffers: this.live, liveBytes: this.liveBytes, peakBytes: this.liveBytes, pooledBytes: 0 }
  }
  resetPeakMemory(): void {}
  async synchronize(): Promise<void> {}
  async time(fn: () => void): Promise<DeviceTiming> {
    const t0 = performance.now()
    fn()
    const ms = performance.now() - t0
    return { deviceMs: ms, wallMs: ms, source: 'host' }
  }
  dispose(): void {}

  runProgram(spec: ProgramSpec): TensorInfo[] {
    if (spec.language !== 'cuda') throw new Error(`emulator: program '${spec.name}' is ${spec.language}`)
    if (spec.sharedBytes) throw new Error(`emulator: dynamic shared memory is not emulated ('${spec.name}')`)
    const binary = this.compile(spec)
    const block = spec.block ?? [256, 1, 1]
    const scalars = spec.scalars ?? []
    const parts: Uint8Array[] = []
    const head = new Uint32Array([
      spec.inputs.length,
      spec.outputs.length,
      scalars.length,
      ...spec.grid,
      ...block,
    ])
    parts.push(new Uint8Array(head.buffer))
    for (const t of spec.inputs) {
      const s = t.dataId as Stored
      parts.push(new Uint8Array(new BigUint64Array([BigInt(s.bytes.byteLength)]).buffer), s.bytes)
    }
    for (const o of spec.outputs) {
      const n = o.shape.reduce((a, d) => a * d, 1) * byteSize(o.dtype)
      parts.push(
        new Uint8Array(new BigUint64Array([BigInt(n)]).buffer),
        new Uint8Array(new Uint32Array([o.zeroInit ? 1 : 0]).buffer),
      )
    }
    const words = new Uint32Array(scalars.length)
    const f = new Float32Array(words.buffer)
    const i = new Int32Array(words.buffer)
    scalars.forEach((sc, k) => {
      if (sc.type === 'f32') f[k] = sc.value
      else if (sc.type === 'i32') i[k] = sc.value
      else words[k] = sc.value >>> 0
    })
    parts.push(new Uint8Array(words.buffer))
    const id = `${process.pid}-${Math.random().toString(36).slice(2)}`
    const inFile = join(this.dir, `${id}.in`)
    const outFile = join(this.dir, `${id}.out`)
    writeFileSync(inFile, Buffer.concat(parts))
    execFileSync(binary, [inFile, outFile], { stdio: ['ignore', 'ignore', 'pipe'] })
    const out = readFileSync(outFile)
    this.launches.push({ name: spec.name, grid: spec.grid })
    let offset = 0
    return spec.outputs.map((o) => {
      const size = o.shape.reduce((a, d) => a * d, 1)
      const n = size * byteSize(o.dtype)
      const bytes = new Uint8Array(out.buffer.slice(out.byteOffset + offset, out.byteOffset + offset + n))
      offset += n
      return { dataId: this.store(bytes, o.dtype, size), shape: [...o.shape], dtype: o.dtype }
    })
  }

  private compile(spec: ProgramSpec): string {
    const defines = Object.entries(spec.defines ?? {})
      .map(([k, v]) => `#define ${k} ${v}\n`)
      .join('')
    const source = `${defines}${spec.source}\nint main(int argc, char** argv) { return emu_main(${spec.entryPoint}, argc, argv); }\n`
    const hash = createHash('sha256')
      .update(readFileSync(join(here, 'emu.h')))
      .update(source)
      .digest('hex')
      .slice(0, 20)
    const binary = join(this.dir, `${spec.name.replace(/[^a-zA-Z0-9_]/g, '_')}-${hash}`)
    if (!existsSync(binary)) {
      // Compile to a private name and rename, so parallel test workers never see half a binary.
      const tmp = `${binary}.${process.pid}.tmp`
      writeFileSync(`${tmp}.cpp`, source)
      execFileSync(
        'g++',
        [
          '-O1',
          '-std=c++20',
          '-pthread',
          '-include',
          join(here, 'emu.h'),
          '-x',
          'c++',
          `${tmp}.cpp`,
          '-o',
          tmp,
        ],
        {
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      )
      renameSync(tmp, binary)
    }
    return binary
  }
}
