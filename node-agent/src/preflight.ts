// What `mirrormesh doctor --role agent` checks beyond the settings themselves: the things a
// mirror's start-up or first turn would trip on, each with the fix. Models are probed in a
// child process, as the agent does before loading them.
import { constants, existsSync } from 'node:fs'
import { access, mkdir } from 'node:fs/promises'
import path from 'node:path'
import type { AgentConfig } from './config.js'
import { which } from '@mirrormesh/speech'

export async function agentProblems(cfg: AgentConfig): Promise<string[]> {
  const problems: string[] = []
  try {
    await mkdir(cfg.stateDir, { recursive: true })
    await access(cfg.stateDir, constants.W_OK)
  } catch (err) {
    problems.push(`MIRRORMESH_STATE_DIR ${cfg.stateDir} is not writable (${(err as Error).message}). Fix: create it and give the agent's user write access.`)
  }
  const needBin = (bin: string, why: string, pkg: string): void => {
    if (!which(bin)) problems.push(`${why}: ${bin} not found. Fix: apt install ${pkg}.`)
  }
  if (cfg.audioSource === 'arecord') needBin('arecord', 'AUDIO_SOURCE=arecord', 'alsa-utils')
  if (cfg.audioSink === 'aplay') needBin('aplay', 'AUDIO_SINK=aplay', 'alsa-utils')
  if (cfg.audioSource === 'file' && !(cfg.audioFile && existsSync(cfg.audioFile))) problems.push(`AUDIO_FILE ${cfg.audioFile ?? '(unset)'} does not exist. Fix: point it at a 16 kHz mono WAV.`)
  if (cfg.audioSource !== 'none') needBin('pocketsphinx_continuous', 'offline mode (recognising speech while the hub is down)', 'pocketsphinx pocketsphinx-en-us')
  if (cfg.kwsModelDir) {
    const { KeywordSpotterWake } = await import('./audio/kws.js')
    await KeywordSpotterWake.probe({ modelDir: cfg.kwsModelDir, keywordsFile: cfg.kwsKeywordsFile, threshold: cfg.kwsThreshold })
      .catch((err: Error) => problems.push(`KWS_MODEL_DIR: ${err.message}. Fix: unpack a sherpa-onnx KWS release there (see README "Mirror node"); until then the node listens on push-to-talk only.`))
  }
  if (cfg.wakeWordModelDir) {
    const files = ['melspectrogram.onnx', 'embedding_model.onnx', cfg.wakeWord.endsWith('.onnx') ? cfg.wakeWord : `${cfg.wakeWord}_v0.1.onnx`]
    const missing = files.filter((f) => !existsSync(path.join(cfg.wakeWordModelDir!, f)))
    if (missing.length) problems.push(`WAKE_WORD_MODEL_DIR ${cfg.wakeWordModelDir} lacks ${missing.join(', ')}. Fix: download them from the openWakeWord releases.`)
  }
  for (const [name, spec] of [['PTT_GPIO', cfg.pttGpio], ['PRESENCE_GPIO', cfg.presenceGpio]] as const) {
    if (!spec) continue
    needBin(cfg.gpiomon, name, 'gpiod')
    const chip = spec.slice(0, spec.lastIndexOf(':'))
    if (!existsSync(path.join('/dev', chip))) problems.push(`${name}: /dev/${chip} does not exist. Fix: check the chip name with \`gpiodetect\`.`)
  }
  if (cfg.presenceFile && !existsSync(cfg.presenceFile)) problems.push(`PRESENCE_FILE ${cfg.presenceFile} does not exist. Fix: export the GPIO line or point it at the sensor's value file.`)
  return problems
}
