import { readFileSync } from 'node:fs'
import { z } from 'zod'
import { commonSettings, envInt, envPort, loadConfig, requireExistingPath } from '@mirrormesh/broker'

const id = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'letters, digits, ., _ and - (max 64)')

export const agentSettings = {
  ...commonSettings,
  nodeId: id.describe('This node\'s id: its MQTT username and topic level (nodes/{id}/…)'),
  room: z.string().max(64).optional().describe('Room the mirror is in, reported to the hub'),
  mqttUrl: z.url({ protocol: /^(mqtt|mqtts|ws|wss|tcp)$/ }).default('mqtt://127.0.0.1:1883').describe('Broker the node connects to (the hub\'s embedded broker or an external one)'),
  mqttUsername: z.string().optional().describe('MQTT username (default: the node id)'),
  mqttPassword: z.string().optional().describe('MQTT password from `mirrormesh node add`; never logged'),
  mqttPasswordFile: z.string().optional().describe('File holding the MQTT password (systemd credentials); used when MQTT_PASSWORD is unset'),
  heartbeatIntervalMs: envInt(100, 60_000).default(1000).describe('How often the node publishes its heartbeat'),
  hubStaleMs: envInt(300, 600_000).default(3000).describe('Hub heartbeat older than this puts the node in offline mode'),
  healthHost: z.string().default('127.0.0.1').describe('Address of the node\'s local /healthz'),
  healthPort: envPort().default(8081).describe('Port of the node\'s local /healthz (0 picks a free port)'),
}

export type AgentConfig = ReturnType<typeof loadAgentConfig>

export function loadAgentConfig(env: Record<string, string | undefined> = process.env) {
  const cfg = loadConfig(agentSettings, env, (c, problem) => {
    requireExistingPath(c, 'mqttPasswordFile', problem)
    if (!c.mqttPassword && !c.mqttPasswordFile) problem('mqttPassword', 'is required (or MQTT_PASSWORD_FILE). Fix: run `mirrormesh node add <id>` on the hub and set the password it prints.')
    if (c.hubStaleMs !== undefined && c.heartbeatIntervalMs !== undefined && c.hubStaleMs <= c.heartbeatIntervalMs) {
      problem('hubStaleMs', `must be longer than HEARTBEAT_INTERVAL_MS (${c.heartbeatIntervalMs}). Fix: raise HUB_STALE_MS to at least 3× the heartbeat interval.`)
    }
  })
  const password = cfg.mqttPassword ?? readFileSync(cfg.mqttPasswordFile!, 'utf8').trim()
  return Object.freeze({ ...cfg, mqttUsername: cfg.mqttUsername ?? cfg.nodeId, mqttPassword: password })
}
