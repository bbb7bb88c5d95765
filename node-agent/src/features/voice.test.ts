// The hub's wake word is used at start only where this node has a model for it: a name
// without one would leave the mirror on push-to-talk only.
import { execFileSync } from 'node:child_process'
import { EventEmitter } from 'node:events'
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

describe('VoiceFeature with the wake word set to none by the hub', () => {
  it('listens on push-to-talk only (no detector, no open mic), and reports nothing pending', async () => {
    const wav = join(dir, 'quiet.wav')
    execFileSync('sox', ['-n', '-r', '16000', '-c', '1', '-b', '16', wav, 'trim', '0', '0.2'])
    const config = loadAgentConfig({ NODE_ID: 'hall', MQTT_PASSWORD: 'pw', AUDIO_SOURCE: 'file', AUDIO_FILE: wav, AUDIO_SINK: 'none', WAKE_WORD_MODEL_DIR: dir, MIRRORMESH_STATE_DIR: join(dir, 'state2') })
    const settings = new ConfigFeature({ config, log })
    settings.handlers.nodeConfig!({ name: 'nodeConfig', params: { node: 'hall' }, data: { v: 1, ts: 1, wakeWord: null } })
    const client = { publish: async () => {}, publishRaw: async () => {} }
    const state = Object.assign(new EventEmitter(), { state: 'online' })
    const voice = new VoiceFeature({ config, client, state, settings, log } as unknown as ConstructorParameters<typeof VoiceFeature>[0])
    await voice.start()
    try {
      expect(voice.audio?.wake).toMatchObject({ engine: 'none', state: 'off', reason: expect.stringMatching(/push-to-talk only/) })
      expect(settings.wakeWordInUse).toBeNull()
      expect(settings.wakeWordPending).toBe(false)
    } finally {
      await voice.stop()
    }
  })
})
