// The hub's wake word is used at start only where this node has a model for it: a name
// without one would leave the mirror on push-to-talk only.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { createLogger, type Message } from '@mirrormesh/broker'
import { loadAgentConfig } from '../config.js'
import { ConfigFeature } from './config.js'
import { VoiceFeature } from './voice.js'

const log = createLogger({ name: 'test', level: 'silent' })
const dir = mkdtempSync(join(tmpdir(), 'mm-wake-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
writeFileSync(join(dir, 'alexa_v0.1.onnx'), '')

function hubWakeWord(asked: string | null): string | undefined {
  const config = loadAgentConfig({ NODE_ID: 'hall', MQTT_PASSWORD: 'pw', WAKE_WORD_MODEL_DIR: dir, MIRRORMESH_STATE_DIR: join(dir, 'state') })
  const settings = new ConfigFeature({ config, log })
  const msg: Message<'nodeConfig'> = { name: 'nodeConfig', params: { node: 'hall' }, data: { v: 1, ts: 1, wakeWord: asked } }
  settings.handlers.nodeConfig!(msg)
  const voice = new VoiceFeature({ config, settings, log } as unknown as ConstructorParameters<typeof VoiceFeature>[0])
  return (voice as unknown as { hubWakeWord(): string | undefined }).hubWakeWord()
}

describe('VoiceFeature wake word from the hub', () => {
  it('takes a wake word this node has a model for, and keeps WAKE_WORD otherwise', () => {
    expect(hubWakeWord('Alexa')).toBe('alexa')
    expect(hubWakeWord('hey mirror')).toBeUndefined()
    expect(hubWakeWord(null)).toBeUndefined()
  })
})
