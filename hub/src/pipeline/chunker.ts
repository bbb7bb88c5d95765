// Splits streamed LLM text into sentences so TTS can start on the first one.
export class SentenceChunker {
  private buf = ''
  constructor(private readonly maxChars = 160) {}

  /** Feed text; returns the complete sentences it closed. */
  push(text: string): string[] {
    this.buf += text
    const out: string[] = []
    for (;;) {
      // A sentence is closed once whitespace follows its end mark; flush() takes the last one.
      const m = /[.!?]+["')\]]?\s+/.exec(this.buf)
      const cut = m ? m.index + m[0].length : -1
      if (cut > 0) {
        this.emit(out, this.buf.slice(0, cut))
        this.buf = this.buf.slice(cut)
        continue
      }
      if (this.buf.length > this.maxChars) {
        // No sentence end in sight: cut at the last comma or space so TTS is not starved.
        const at = Math.max(this.buf.lastIndexOf(', ', this.maxChars), this.buf.lastIndexOf(' ', this.maxChars))
        const cutAt = at > 20 ? at + 1 : this.maxChars
        this.emit(out, this.buf.slice(0, cutAt))
        this.buf = this.buf.slice(cutAt)
        continue
      }
      return out
    }
  }

  /** The rest, at the end of generation. */
  flush(): string[] {
    const out: string[] = []
    this.emit(out, this.buf)
    this.buf = ''
    return out
  }

  private emit(out: string[], s: string): void {
    const t = s.trim()
    if (/[a-z0-9]/i.test(t)) out.push(t)
  }
}
