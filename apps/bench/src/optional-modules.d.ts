// The optional packages may not be built yet (no dist/index.d.ts). These shorthand declarations
// let the literal import() calls in optional-imports.ts compile either way; their exports are
// checked at run time.
declare module '@attnkit/backend-webgpu'
declare module '@attnkit/backend-cuda'
declare module '@attnkit/mosa'
declare module '@attnkit/tpa'
declare module '@attnkit/lte'
