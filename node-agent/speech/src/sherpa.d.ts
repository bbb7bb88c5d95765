// sherpa-onnx-node ships no types; only what the engines here use is declared.
declare module 'sherpa-onnx-node' {
  export interface SpeechSegment { start: number; samples: Float32Array }
  export class Vad {
    constructor(config: object, bufferSizeInSeconds: number)
    acceptWaveform(samples: Float32Array): void
    isEmpty(): boolean
    isDetected(): boolean
    front(enableExternalBuffer?: boolean): SpeechSegment
    pop(): void
    clear(): void
    reset(): void
    flush(): void
  }
  export const version: string
  const sherpa: { Vad: typeof Vad; version: string }
  export default sherpa
}
