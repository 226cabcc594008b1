/** Which kernel language each backend name runs (extended by registerFusedKernels). */
export type Language = 'wgsl' | 'cuda'

const LANGUAGES = new Map<string, Language>([
  ['webgpu', 'wgsl'],
  ['cuda', 'cuda'],
])

export function fusedLanguage(backendName: string): Language | undefined {
  return LANGUAGES.get(backendName)
}

export function setFusedLanguage(backendName: string, language: Language): void {
  LANGUAGES.set(backendName, language)
}

export function fusedBackends(): [string, Language][] {
  return [...LANGUAGES.entries()]
}
