import { readFileSync } from 'node:fs'
import { z } from 'zod'
import { commonSettings, envInt, envPort, loadConfig, requireExistingPath } from '@mirrormesh/broker'

const gpioLine = z.string().regex(/^[A-Za-z0-9_.-]+:\d{1,4}$/, 'chip:line, e.g. gpiochip0:17')
const id = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'letters, digits, ., _ and - (max 64)')

export const agentSettings = {
  ...commonSettings,
  nodeId: id.describe('This node\'s id: its MQTT username and topic level (nodes/{id}/…)'),
  room: z.string().max(64).optional().describe('Room the mirror is in, reported to the hub, until the hub\'s node config (nodes/{id}/config) says otherwise'),
  mqttUrl: z.url({ protocol: /^(mqtt|mqtts|ws|wss|tcp)$/ }).default('mqtt://127.0.0.1:1883').describe('Broker the node connects to (the hub\'s embedded broker or an external one)'),
  mqttUsername: z.string().optional().describe('MQTT username (default: the node id)'),
  mqttPassword: z.string().optional().describe('MQTT password from `mirrormesh node add`; never logged'),
  mqttCa: z.string().optional().meta({ env: 'MQTT_CA', description: 'PEM file of the CA the hub\'s certificate must chain to (ca.pem from `mirrormesh tls init`), for mqtts:// and the HTTPS bundle fetch; unset: the system\'s CAs' }),
  mqttPasswordFile: z.string().optional().describe('File holding the MQTT password (systemd credentials); used when MQTT_PASSWORD is unset'),
  heartbeatIntervalMs: envInt(100, 60_000).default(1000).describe('How often the node publishes its heartbeat'),
  hubHeartbeatIntervalMs: envInt(100, 60_000).default(1000).describe('How often the hub publishes its heartbeat (its HEARTBEAT_INTERVAL_MS); HUB_STALE_MS must cover two of them'),
  hubStaleMs: envInt(300, 600_000).default(3000).describe('Hub heartbeat older than this puts the node in offline mode'),
  healthHost: z.string().default('127.0.0.1').describe('Address of the node\'s local /healthz'),
  healthPort: envPort().default(8081).describe('Port of the node\'s local /healthz, the mirror screen and push-to-talk (0 picks a free port)'),
  stateDir: z.string().min(1).default('.state/agent').meta({ env: 'MIRRORMESH_STATE_DIR', description: 'Folder for the offline reply bundle, the offline journal and the fallback log' }),
  hubHttpUrl: z.url({ protocol: /^https?$/ }).optional().describe('Hub HTTP API, for the offline reply bundle (default: the MQTT host, on the port the hub announces in cache/manifest, else 8080)'),
  audioSource: z.enum(['none', 'arecord', 'stdin', 'file']).default('none').describe('Microphone: arecord (ALSA), stdin (raw PCM16 16 kHz mono, e.g. piped from elsewhere), a WAV file, or none'),
  audioDevice: z.string().default('default').describe('ALSA device for arecord/aplay'),
  audioFile: z.string().optional().describe('WAV file (16 kHz mono PCM16) played as the microphone when AUDIO_SOURCE=file'),
  audioSink: z.enum(['none', 'aplay', 'file']).default('none').describe('Speaker: aplay (ALSA), file (records what was played, with timestamps), or none'),
  audioSinkFile: z.string().optional().describe('JSONL log of played audio when AUDIO_SINK=file'),
  wakeWordModelDir: z.string().optional().describe('openWakeWord models folder (melspectrogram, embedding and keyword .onnx); unset: every utterance the VAD hears is a turn, plus push-to-talk'),
  wakeWord: z.string().regex(/^[a-z0-9_.-]+$/).default('hey_jarvis').describe('Keyword model name in WAKE_WORD_MODEL_DIR (<name>.onnx or <name>_v0.1.onnx)'),
  wakeThreshold: z.coerce.number().min(0).max(1).default(0.5).describe('Wake word score needed to start listening'),
  kwsModelDir: z.string().optional().describe('sherpa-onnx keyword spotter model folder (encoder/decoder/joiner .onnx, tokens.txt); used before WAKE_WORD_MODEL_DIR when set'),
  kwsKeywordsFile: z.string().optional().describe('Keywords for the spotter, one tokenised phrase per line (default KWS_MODEL_DIR/keywords.txt)'),
  kwsThreshold: z.coerce.number().min(0).max(1).default(0.25).describe('Keyword spotter threshold: lower fires more easily'),
  vadEndSilenceMs: envInt(100, 5000).default(600).describe('Silence after speech that ends an utterance on the node'),
  offlineEndpointSilenceMs: envInt(0, 1000).default(100).describe('Offline mode: quiet after a whole, confident grammar phrase that ends the utterance early instead of after VAD_END_SILENCE_MS (0: off)'),
  offlineConfidence: z.coerce.number().min(0).max(1).default(0.5).describe('Offline recognition confidence needed to answer from the cache'),
  presenceFile: z.string().optional().describe('GPIO/sysfs value file polled for presence (1 = someone there)'),
  presenceGpio: gpioLine.optional().describe('Presence sensor (PIR/radar) on a GPIO line, watched with gpiomon: chip:line, e.g. gpiochip0:17'),
  presenceGpioActive: z.enum(['high', 'low']).default('high').describe('Level of PRESENCE_GPIO that means someone is there'),
  pttGpio: gpioLine.optional().describe('Push-to-talk button on a GPIO line, watched with gpiomon: chip:line, e.g. gpiochip0:27 (tap: listen until you stop talking; hold: listen until release)'),
  pttGpioActive: z.enum(['high', 'low']).default('low').describe('Level of PTT_GPIO while the button is pressed (low: button to ground with a pull-up)'),
  gpiomon: z.string().min(1).default('gpiomon').describe('gpiomon executable (libgpiod v1 or v2, told apart by --version; apt install gpiod)'),
}

export type AgentConfig = ReturnType<typeof loadAgentConfig>

export function loadAgentConfig(env: Record<string, string | undefined> = process.env) {
  const cfg = loadConfig(agentSettings, env, (c, problem) => {
    requireExistingPath(c, 'mqttPasswordFile', problem)
    requireExistingPath(c, 'mqttCa', problem)
    if (!c.mqttPassword && !c.mqttPasswordFile) problem('mqttPassword', 'is required (or MQTT_PASSWORD_FILE). Fix: run `mirrormesh node add <id>` on the hub and set the password it prints.')
    // The node watches the hub's heartbeats, not its own: one lost heartbeat (QoS 0) must not
    // put the mirror offline, so the stale limit has to span two of the hub's intervals.
    if (c.hubStaleMs !== undefined && c.hubHeartbeatIntervalMs !== undefined && c.hubStaleMs < 2 * c.hubHeartbeatIntervalMs) {
      problem('hubStaleMs', `must be at least twice HUB_HEARTBEAT_INTERVAL_MS (${c.hubHeartbeatIntervalMs}), or one lost hub heartbeat puts the node offline. Fix: raise HUB_STALE_MS to about 3× the hub's HEARTBEAT_INTERVAL_MS (and set HUB_HEARTBEAT_INTERVAL_MS to it).`)
    }
    if (c.audioSource === 'file' && !c.audioFile) problem('audioFile', 'is required when AUDIO_SOURCE=file. Fix: set AUDIO_FILE to a 16 kHz mono PCM16 WAV.')
  })
  const password = cfg.mqttPassword ?? readFileSync(cfg.mqttPasswordFile!, 'utf8').trim()
  // Read once here: a CA that cannot be read is a start-up error, not a reconnect loop.
  const ca = cfg.mqttCa ? readFileSync(cfg.mqttCa) : undefined
  return Object.freeze({ ...cfg, mqttUsername: cfg.mqttUsername ?? cfg.nodeId, mqttPassword: password, mqttCa: ca })
}
