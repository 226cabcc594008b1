/**
 * Tile sizes shared by the CUDA and WGSL kernels, so the TypeScript launch code computes the
 * same grids for both. Every kernel runs 256 threads (CUDA) as a 16 x 16 grid of (ty, tx); a
 * thread owns rows ty + 16 m and columns tx + 16 j of its block's output tile.
 */
export interface Tiles {
  /** Head dimension (a multiple of 32, at most 128). */
  D: number
  /** Rows of the selected-token GEMMs per block. */
  BM: number
  /** Columns of the dModel-wide GEMMs per block. */
  BN: number
  /** Reduction chunk of the GEMMs. */
  BK: number
  /** Forward attention: queries per block and keys per step. */
  BQ: number
  BKV: number
  /** Backward attention: queries and keys per block (square). */
  BB: number
  /** Weight-gradient tiles (BW x BW outputs per block). */
  BW: number
}

export function cudaTiles(D: number): Tiles {
  // GEMMs: 128-row block tiles (8 rows per thread), 64 dModel columns (or the head dim), 16-deep
  // reduction chunks. Attention: 64 x 64 tiles forward and backward, for every head dim.
  return { D, BM: 128, BN: 64, BK: 16, BQ: 64, BKV: 64, BB: 64, BW: 128 }
}

/**
 * WGSL keeps each workgroup's memory within 16 KiB (the WebGPU default limit) and runs 64
 * invocations as an 8 x 8 grid.
 */
export function wgslTiles(D: number): Tiles {
  return {
    D,
    BM: 32,
    BN: 32,
    BK: 8,
    BQ: D <= 64 ? 16 : 8,
    BKV: D <= 64 ? 16 : 8,
    BB: D <= 64 ? 16 : 8,
    BW: 32,
  }
}
