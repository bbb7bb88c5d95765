// A push-to-talk button from any on/off input (gpiomon edges, a value file). Contacts
// bounce for a few ms, so a level must hold `debounceMs` before it counts. A short tap
// starts listening and the VAD ends the turn; holding the button ends it on release.
import { EventEmitter } from 'node:events'
import type { PresenceInput } from './presence.js'

export interface ButtonOptions {
  /** A level must hold this long to count (default 20 ms). */
  debounceMs?: number
  /** Released sooner than this after a press: a tap (default 400 ms). */
  tapMs?: number
}

export interface ButtonEvents {
  press: []
  /** `held`: true when the button was held (release ends the turn), false for a tap. */
  release: [{ heldMs: number; held: boolean }]
  error: [Error]
}

export class PushButton extends EventEmitter<ButtonEvents> {
  private pressed = false
  private pressedAt = 0
  private pending: NodeJS.Timeout | undefined

  constructor(private readonly input: PresenceInput, private readonly opts: ButtonOptions = {}) {
    super()
  }

  get name(): string {
    return this.input.name
  }

  start(): this {
    this.input.start(
      (down) => this.level(down),
      (err) => {
        if (this.listenerCount('error')) this.emit('error', err)
      },
    )
    return this
  }

  private level(down: boolean): void {
    if (this.pending) clearTimeout(this.pending)
    this.pending = undefined
    if (down === this.pressed) return
    const at = Date.now()
    this.pending = setTimeout(() => {
      this.pending = undefined
      this.pressed = down
      if (down) {
        this.pressedAt = at
        this.emit('press')
      } else {
        const heldMs = at - this.pressedAt
        this.emit('release', { heldMs, held: heldMs >= (this.opts.tapMs ?? 400) })
      }
    }, this.opts.debounceMs ?? 20)
    this.pending.unref()
  }

  stop(): void {
    if (this.pending) clearTimeout(this.pending)
    this.pending = undefined
    this.input.stop()
  }
}
