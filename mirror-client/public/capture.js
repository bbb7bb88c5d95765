// AudioWorklet: the microphone at the context's rate → PCM16 mono 16 kHz, 320 samples (20 ms)
// per message, with the frame's RMS (0..1) for the level meter and the speech-end estimate.
// Decimation averages the input samples each output sample covers (a box low-pass), enough
// for speech recognition at 16 kHz.
class Capture extends AudioWorkletProcessor {
  constructor() {
    super()
    this.ratio = sampleRate / 16000
    this.acc = 0
    this.n = 0
    this.pos = 0 // input samples into the current output sample
    this.out = new Int16Array(320)
    this.len = 0
    this.sq = 0
  }
  process(inputs) {
    const ch = inputs[0] && inputs[0][0]
    if (!ch) return true
    for (let i = 0; i < ch.length; i++) {
      this.acc += ch[i]
      this.n++
      this.pos++
      if (this.pos >= this.ratio) {
        this.pos -= this.ratio
        let v = this.acc / this.n
        this.acc = 0
        this.n = 0
        v = v > 1 ? 1 : v < -1 ? -1 : v
        this.sq += v * v
        this.out[this.len++] = Math.round(v * 32767)
        if (this.len === this.out.length) {
          const rms = Math.sqrt(this.sq / this.len)
          this.port.postMessage({ pcm: this.out, rms }, [this.out.buffer])
          this.out = new Int16Array(320)
          this.len = 0
          this.sq = 0
        }
      }
    }
    return true
  }
}
registerProcessor('mirrormesh-capture', Capture)
