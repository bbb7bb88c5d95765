import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { z } from 'zod'
import { DEFAULT_ACTION_MIN_MARGIN } from '@mirrormesh/speech'
import { commonSettings, defaultCredentialsPath, envBool, envInt, envPort, loadConfig, requireExistingPath } from '@mirrormesh/broker'

export const hubSettings = {
  ...commonSettings,
  stateDir: z.string().min(1).default('.state/hub').meta({ env: 'MIRRORMESH_STATE_DIR', description: 'Folder for broker persistence, credentials and hub state' }),
  credentialsFile: z.string().optional().describe('Hashed MQTT credentials file (default: <state dir>/credentials.json)'),
  mqttUrl: z.url({ protocol: /^(mqtt|mqtts|ws|wss|tcp)$/ }).optional().describe('External broker (Mosquitto, EMQX); unset runs the embedded broker'),
  mqttUsername: z.string().optional().describe('Username for the external broker (MQTT_URL)'),
  mqttPassword: z.string().optional().describe('Password for the external broker (MQTT_URL); never logged'),
  mqttHost: z.string().default('0.0.0.0').describe('Address the embedded broker listens on'),
  mqttPort: envPort().default(1883).describe('Embedded broker MQTT/TCP port (0 picks a free port)'),
  mqttWsEnabled: envBool().default(true).describe('Serve MQTT over WebSocket (mirror screens, browsers)'),
  mqttWsPort: envPort().default(9001).describe('Embedded broker MQTT-over-WebSocket port'),
  mqttTlsHost: z.string().optional().describe('Address the embedded broker\'s MQTT/TLS listener binds (default: MQTT_HOST); set 0.0.0.0 with MQTT_HOST=127.0.0.1 to keep plain MQTT on the box and TLS on the LAN'),
  mqttTlsPort: envPort().default(8883).describe('Embedded broker MQTT/TLS port, used when a certificate is set'),
  mqttTlsCert: z.string().optional().describe('PEM certificate path (`mirrormesh tls init`); setting it turns on MQTT/TLS and the HTTPS API (needs MQTT_TLS_KEY)'),
  mqttTlsKey: z.string().optional().describe('PEM private key path for MQTT_TLS_CERT'),
  brokerPersistence: envBool().default(true).describe('Keep retained messages, sessions and wills on disk across restarts'),
  httpHost: z.string().default('127.0.0.1').describe('Address of the plain HTTP API and /metrics; off loopback its /api routes need the admin token (nodes use the HTTPS API)'),
  httpPort: envPort().default(8080).describe('HTTP API port (0 picks a free port)'),
  httpsHost: z.string().optional().describe('Address of the HTTPS API, served when MQTT_TLS_CERT is set (default: where MQTT/TLS listens): nodes fetch their offline bundle here; admin routes need the admin token'),
  httpsPort: envPort().default(8443).describe('HTTPS API port (0 picks a free port)'),
  authFailuresPerMinute: envInt(1, 10_000).default(10).describe('Failed logins (admin token, node password) one address may make per minute on a LAN listener before it gets 429'),
  heartbeatIntervalMs: envInt(100, 60_000).default(1000).describe('How often the hub publishes its heartbeat'),
  healthIntervalMs: envInt(200, 600_000).default(3000).describe('How often the hub checks its components (engines, broker, bundle) and publishes retained health/{component} on a change'),
  nodeStaleMs: envInt(500, 600_000).default(3000).describe('A node whose last heartbeat is older than this is marked stale'),
  drainTimeoutMs: envInt(0, 600_000).default(10_000).describe('How long a drain waits for running turns before stopping'),
  incidentSettleMs: envInt(100, 3_600_000).default(30_000).describe('Incidents: a node (or fallback burst) must stay recovered this long before its incident closes; going down again sooner folds into the same incident (a flapping node makes one entry)'),
  pipelineEnabled: envBool().default(true).describe('Run the voice pipeline (audio/in → VAD → ASR → skills/LLM → TTS → audio/out)'),
  haDiscovery: envBool().default(false).describe('Announce every node to Home Assistant with MQTT discovery (retained under HA_DISCOVERY_PREFIX)'),
  haDiscoveryPrefix: z.string().regex(/^[A-Za-z0-9_-]+$/).default('homeassistant').describe('Home Assistant discovery prefix (its mqtt discovery_prefix)'),
  bundleEnabled: envBool().default(true).describe('Build and announce the offline reply bundle for mirror nodes (pre-synthesized with espeak-ng at start-up)'),
  maxConcurrentSessions: envInt(1, 64).default(2).describe('Turns processed at once; more wait in the queue'),
  queueMax: envInt(0, 256).default(4).describe('Turns that may wait for a slot; beyond it the node hears "busy"'),
  vadEndSilenceMs: envInt(100, 5000).default(500).describe('Silence after speech that ends a turn (hub-side Silero VAD)'),
  earlyEndSilenceMs: envInt(0, 1000).default(100).describe('Online early end of turn: quiet after a whole, confident grammar phrase (the offline criteria) that ends the turn, answers and tells the node to stop sending, instead of waiting for VAD_END_SILENCE_MS or the node\'s end flag (0: off). Needs pocketsphinx as the streaming ASR (README "End of turn")'),
  earlyEndRetryMs: envInt(0, 2000).default(200).describe('When the probe at EARLY_END_SILENCE_MS found no whole phrase, one more at the same pause after this much quiet, ms; longer than EARLY_END_SILENCE_MS, or 0 for none (left at its default under a longer EARLY_END_SILENCE_MS: none): the decoder often forces one more word into the first 100 ms of quiet'),
  earlyEndResumeMs: envInt(0, 5000).default(600).describe('Speech from the same node this soon after an early end continues that turn: the early answer is withdrawn and the whole sentence answered once'),
  maxUtteranceMs: envInt(1000, 60_000).default(15_000).describe('Longest utterance; also ends a turn whose node went quiet'),
  turnTimeoutMs: envInt(1000, 300_000).default(30_000).describe('A whole turn (listen to last frame) is cut off after this'),
  modelsDir: z.string().optional().meta({ env: 'MIRRORMESH_MODELS_DIR', description: 'Folder with the ASR/TTS/LLM models (default: <state dir>/models); see `mirrormesh models`' }),
  asrSherpaModel: z.string().default('asr').describe('sherpa-onnx ASR model folder inside the models dir (first in the ASR chain)'),
  ttsSherpaModel: z.string().default('tts').describe('sherpa-onnx TTS model folder inside the models dir (first in the TTS chain)'),
  sherpaProvider: z.enum(['cpu', 'cuda']).default('cpu').describe('onnxruntime provider for sherpa-onnx models (cuda on a GPU hub)'),
  sherpaThreads: envInt(1, 16).default(1).describe('Threads per sherpa-onnx model'),
  asrSecondOpinion: envBool().default(true).describe('Check each pocketsphinx grammar result against a phone loop and send untrusted ones, decoded open-vocabulary, to the LLM (or "I can\'t answer that yet") instead of a skill. false: every utterance becomes its nearest skill phrase, open questions included (README "Understanding" has the trade-off)'),
  asrActionMinMargin: z.coerce.number().min(-50).max(50).default(DEFAULT_ACTION_MIN_MARGIN).describe('Least second-opinion margin (per 10 ms frame) for a phrase that changes something — a light, a timer, the volume; answers need −4.5. Higher refuses more out-of-skill speech and more real commands ("say that again"); −4.5 or lower: the same as answers (README "Understanding" has the trade-off)'),
  asrGrammarExtra: z.string().default('').describe('Extra phrases (|-separated) the pocketsphinx fallback grammar accepts besides the skills'),
  espeakVoice: z.string().regex(/^[a-z0-9+_-]{1,32}$/i).default('en-us').describe('espeak-ng voice for the TTS fallback'),
  espeakSpeedWpm: envInt(80, 450).default(175).describe('espeak-ng speed, words per minute'),
  llmModel: z.string().optional().describe('GGUF model for the LLM (node-llama-cpp); unset: non-skill turns hear "unavailable"'),
  llmMaxThreads: envInt(0, 256).default(0).describe('CPU threads for the LLM; 0 = CPU cores − 1, leaving a core for the broker (the library default takes them all)'),
  llmGpuLayers: z.union([z.literal('auto'), envInt(0, 1000)]).default(0).describe('Model layers offloaded to the GPU: 0 on CPU machines, "auto" on a GPU hub'),
  llmContextSize: envInt(256, 131_072).default(2048).describe('LLM context size in tokens'),
  llmTimeoutMs: envInt(500, 120_000).default(8000).describe('An LLM reply is abandoned after this; three in a row mark the LLM unhealthy'),
  llmMaxTokens: envInt(8, 4096).default(96).describe('Longest LLM reply in tokens'),
  vramCapMb: envInt(0, 1_048_576).default(0).describe('GPU memory the hub may use (0: no cap); reported next to mirrormesh_vram_bytes'),
  persona: z.string().max(2000).default('You are the voice of a smart mirror in a home. Answer in one or two short, friendly sentences.').describe('System prompt persona for the LLM'),
  memoryEnabled: envBool().default(true).describe('Long-term memory ("remember that …"): every turn stored under the room\'s (or a named user\'s) memory key; README "Memory"'),
  qdrantUrl: z.url({ protocol: /^https?$/ }).optional().describe('Qdrant server for memory; unset: the embedded store (<state dir>/memory.db, SQLite)'),
  qdrantApiKey: z.string().optional().describe('Qdrant API key (QDRANT_URL); never logged'),
  qdrantCollection: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/).default('mirrormesh_memory').describe('Qdrant collection for memory (created on start with the embedding size)'),
  embeddingModel: z.string().optional().describe('GGUF embedding model for memory (node-llama-cpp; `mirrormesh models pull bge-small-en-v1.5`); unset: keyword search + hashed n-gram vectors'),
  embeddingMaxThreads: envInt(0, 256).default(1).describe('CPU threads for the embedding model; 0 = CPU cores − 1'),
  embeddingTimeoutMs: envInt(50, 60_000).default(2000).describe('An embedding that takes longer is abandoned: that turn\'s memory uses keyword search (counted)'),
  memoryMaxPerKey: envInt(0, 10_000_000).default(5000).describe('Most memories kept per key (room or user); the oldest are pruned. 0: no limit'),
  memoryMaxAgeDays: envInt(0, 36_500).default(365).describe('Memories older than this are pruned. 0: kept for ever'),
  memorySharedKeys: z.string().default('').describe('|-separated memory keys every room also reads (e.g. user:family); a room never reads another room\'s otherwise'),
  memoryContextTokens: envInt(0, 4096).default(256).describe('Most tokens of memories and recent turns put into the LLM prompt'),
  memoryVectorCacheMb: envInt(0, 65_536).default(64).describe('Memory vectors held in RAM for fast recall, all keys together (hashed vectors ~1 KiB each: 64 MiB ≈ 60k facts); a key that does not fit is searched in the file by sqlite-vec, 5–10x slower. 0: none'),
  hubRole: z.enum(['solo', 'active', 'standby']).default('solo').describe('solo: the only hub, serves every node. active: one of several hubs on one external broker, nodes split between the live active hubs (retained nodes/{id}/assign). standby: serves nodes only while no active hub is alive, hands each back when idle'),
  hubPeerStaleMs: envInt(500, 60_000).default(3000).describe('HUB_ROLE active/standby: another hub whose heartbeat is older than this (or whose Last Will fired) is dead and its nodes are taken over'),
  arbitrationWindowMs: envInt(0, 2000).default(150).describe('Mirrors of one room that start a turn within this window: only the one hearing it loudest over its noise floor answers, the others stop listening. 0 turns it off; a mirror alone in its room is never delayed'),
  rooms: z.string().default('kitchen|living room|bedroom|hall|bathroom|office|garage|dining room').describe('|-separated rooms the light skill knows'),
}

export type HubConfig = ReturnType<typeof loadHubConfig>

export function loadHubConfig(env: Record<string, string | undefined> = process.env) {
  const cfg = loadConfig(hubSettings, env, (c, problem) => {
    if (c.mqttTlsCert && !c.mqttTlsKey) problem('mqttTlsKey', 'is required when MQTT_TLS_CERT is set. Fix: set it to the PEM key path, or unset MQTT_TLS_CERT.')
    if (c.mqttTlsKey && !c.mqttTlsCert) problem('mqttTlsCert', 'is required when MQTT_TLS_KEY is set. Fix: set it to the PEM certificate path, or unset MQTT_TLS_KEY.')
    // The shipped hub.env turns TLS on: a missing file most likely means `tls init` was not run yet.
    for (const key of ['mqttTlsCert', 'mqttTlsKey'] as const) {
      const p = c[key]
      if (p && !existsSync(p)) problem(key, `path ${JSON.stringify(p)} does not exist. Fix: run \`mirrormesh tls init --name <hub's LAN name>\` as the hub's user (writes <state dir>/tls/hub.pem and hub-key.pem), point it at your own PEM file, or unset MQTT_TLS_CERT and MQTT_TLS_KEY for no TLS.`)
    }
    requireExistingPath(c, 'llmModel', problem)
    requireExistingPath(c, 'embeddingModel', problem)
    if (c.mqttPassword && !c.mqttUsername) problem('mqttUsername', 'is required when MQTT_PASSWORD is set. Fix: set the external broker username.')
    if (c.hubRole !== 'solo' && c.mqttUrl === undefined) problem('hubRole', `${c.hubRole} needs an external broker (the embedded one dies with its hub). Fix: set MQTT_URL to a Mosquitto/EMQX every hub uses, or HUB_ROLE=solo.`)
    // The second probe comes later in the same pause; one set at or before the first was silently
    // never run. Only a value set here is refused: with EARLY_END_SILENCE_MS ≥ 200 and the retry
    // left at its default there is no second probe, as before (documented), and the hub still starts.
    if (env.EARLY_END_RETRY_MS && c.earlyEndSilenceMs > 0 && c.earlyEndRetryMs > 0 && c.earlyEndRetryMs <= c.earlyEndSilenceMs) problem('earlyEndRetryMs', `is ${c.earlyEndRetryMs} ms, not longer than EARLY_END_SILENCE_MS (${c.earlyEndSilenceMs} ms): the second probe is later in the same pause than the first. Fix: set EARLY_END_RETRY_MS above EARLY_END_SILENCE_MS, or to 0 for no second probe.`)
    if (c.mqttUrl === undefined && (c.mqttUsername || c.mqttPassword)) problem('mqttUrl', 'is required when MQTT_USERNAME/MQTT_PASSWORD are set (they are for an external broker). Fix: set MQTT_URL, or unset them.')
  })
  const stateDir = resolve(cfg.stateDir)
  // ROOMS parsed once here; the pipeline, skills and the offline bundle take the list.
  const roomList = cfg.rooms.split('|').map((r) => r.trim().toLowerCase()).filter(Boolean)
  // TLS listeners follow MQTT_HOST unless told otherwise, so narrowing MQTT_HOST (a test, a
  // single-box setup) never opens a wider address by surprise.
  const mqttTlsHost = cfg.mqttTlsHost ?? cfg.mqttHost
  return Object.freeze({ ...cfg, mqttTlsHost, httpsHost: cfg.httpsHost ?? mqttTlsHost, stateDir, roomList, modelsDir: resolve(cfg.modelsDir ?? resolve(stateDir, 'models')), credentialsFile: defaultCredentialsPath({ CREDENTIALS_FILE: cfg.credentialsFile, MIRRORMESH_STATE_DIR: stateDir }) })
}

