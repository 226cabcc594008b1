// The CUDA backend may not be built yet (no dist/index.d.ts); this shorthand declaration lets the
// literal import() in h100.ts compile either way (it is only imported for its side effect).
declare module '@attnkit/backend-cuda'
