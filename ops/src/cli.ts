#!/usr/bin/env node
// The `mirrormesh` operator CLI: run the processes, list nodes, manage credentials,
// check the broker path end to end, validate configuration.
import { Command, Option } from 'commander'
import { createRequire } from 'node:module'
import { existsSync } from 'node:fs'
// Each command loads its own code when it runs (`await import`), so `mirrormesh agent` on a mirror
// does not also load the other commands' modules.

const pkg = createRequire(import.meta.url)('../package.json') as { version: string }

const program = new Command('mirrormesh')
  .description('mirrormesh: a voice-assistant mesh for home labs, over MQTT')
  .version(pkg.version)
  .option('--env-file <path>', 'load settings from an env file (as systemd EnvironmentFile) before running')
  .hook('preAction', (cmd) => {
    const file = cmd.opts<{ envFile?: string }>().envFile
    if (file) {
      if (!existsSync(file)) throw new Error(`--env-file ${file} does not exist`)
      process.loadEnvFile(file)
    }
  })

program.command('hub').description('run the hub: embedded broker (or MQTT_URL), node registry, HTTP API')
  .action(async () => { process.exitCode = await (await (await import('./hub.js')).importHub('hub')).runHub() })

program.command('agent').description('run a node agent (mirror Pi): wake word and voice turns with the hub, offline answers while the hub is down, the mirror screen, push-to-talk and presence (GPIO, MQTT, HTTP), status and heartbeat')
  .action(async () => { process.exitCode = await (await import('@mirrormesh/node-agent')).runAgent() })

program.command('nodes').description('list every node: state, heartbeat age, mode, clock skew, versions')
  .option('--hub <url>', 'hub HTTP API', process.env.HUB_URL ?? 'http://127.0.0.1:8080')
  .option('--json', 'print JSON instead of a table')
  .action(async (opts) => { process.exitCode = await (await import('./nodes.js')).nodesCommand(opts) })

const node = program.command('node').description('manage node credentials (on the hub)')
const credsOption = () => new Option('--credentials-file <path>', 'credentials file (default: $CREDENTIALS_FILE or $MIRRORMESH_STATE_DIR/credentials.json)')
node.command('add <id>').description('create credentials for a node and print its password once')
  .addOption(credsOption())
  .addOption(new Option('--role <role>', 'what the credential may do').choices(['node', 'observer', 'hub']).default('node'))
  .option('--replace', 'rotate the password of an existing id')
  .action(async (id: string, opts) => { process.exitCode = await (await import('./credentials.js')).nodeAddCommand(id, opts) })
node.command('remove <id>').description('delete a node\'s credentials').addOption(credsOption())
  .action(async (id: string, opts) => { process.exitCode = await (await import('./credentials.js')).nodeRemoveCommand(id, opts) })
node.command('list').description('list ids that have credentials').addOption(credsOption()).option('--json', 'print JSON')
  .action(async (opts) => { process.exitCode = await (await import('./credentials.js')).nodeListCommand(opts) })

program.command('check').description('publish a probe through the broker and receive it back, with real credentials; prints round-trip time')
  .option('--url <url>', 'broker URL', process.env.MQTT_URL ?? 'mqtt://127.0.0.1:1883')
  .option('--username <name>', 'MQTT username (default $MQTT_USERNAME, or $NODE_ID)')
  .option('--password <password>', 'MQTT password (default $MQTT_PASSWORD)')
  .option('--node <id>', 'node id whose probe topic to use (default: the username)')
  .option('--base <topic>', 'base topic', process.env.BASE_TOPIC ?? 'mirrormesh')
  .option('--count <n>', 'probes to send', '3')
  .option('--timeout-ms <ms>', 'give up after this long per probe', '5000')
  .option('--json', 'print JSON')
  .action(async (opts) => { process.exitCode = await (await import('./check.js')).checkCommand(opts) })

const models = program.command('models').description('check or download the voice pipeline models (sherpa-onnx ASR/TTS, LLM GGUF)')
const modelsDirOption = () => new Option('--models-dir <path>', 'models folder (default: $MIRRORMESH_MODELS_DIR or <state dir>/models)')
models.command('check').description('check the configured models: present, intact (models.lock.json), right kind; exit 1 if one is invalid')
  .addOption(modelsDirOption())
  .option('--no-hashes', 'compare sizes with models.lock.json but skip the sha256 (faster on big models)')
  .option('--json', 'print JSON')
  .action(async (opts) => { process.exitCode = await (await import('./models.js')).modelsCheckCommand(opts) })
models.command('pull [ids...]').description('download the default models (or the given ids) into the models folder; needs internet, tar and bzip2')
  .addOption(modelsDirOption())
  .option('--force', 'replace a model that is already there')
  .option('--list', 'list the models pull knows and exit')
  .action(async (ids: string[], opts) => { process.exitCode = await (await import('./models.js')).modelsPullCommand(ids, opts) })

const broker = program.command('broker').description('helpers for running with an external broker')
broker.command('mosquitto-acl').description('print a Mosquitto acl_file derived from the topic contract')
  .option('--base <topic>', 'base topic', process.env.BASE_TOPIC ?? 'mirrormesh')
  .option('--hub <username...>', 'usernames with hub rights', ['hub-main'])
  .option('--observer <username...>', 'read-only usernames (dashboards)', [])
  .action(async (opts: { base: string; hub: string[]; observer: string[] }) => {
    const { renderMosquittoAcl } = await import('@mirrormesh/broker')
    process.stdout.write(renderMosquittoAcl(opts.base, { hubs: opts.hub, observers: opts.observer }))
  })

program.command('doctor').description('validate configuration and report every problem at once')
  .addOption(new Option('--role <role>', 'which process to check').choices(['hub', 'agent']))
  .action(async (opts) => { process.exitCode = await (await import('./doctor.js')).doctorCommand(opts) })

const tls = program.command('tls').description('a local CA for the LAN: the hub\'s certificate for MQTT/TLS and HTTPS, ca.pem for nodes')
const collect = (v: string, prev: string[] = []) => [...prev, v]
tls.command('init').description('make a CA and a hub certificate in <state dir>/tls (ca.pem, ca-key.pem, hub.pem, hub-key.pem)')
  .option('--dir <dir>', 'folder (default: $MIRRORMESH_STATE_DIR/tls)')
  .option('--name <host>', 'a DNS name nodes use for the hub, e.g. hub.lan (repeat for more)', collect)
  .option('--ip <addr>', 'an IP address nodes use for the hub (repeat for more)', collect)
  .option('--force', 'replace an existing CA (every node then needs the new ca.pem)')
  .action(async (opts) => { process.exitCode = await (await import('./tls.js')).tlsInitCommand(opts) })
tls.command('rotate').description('re-issue the hub certificate from the same CA (same names unless given)')
  .option('--dir <dir>', 'folder (default: $MIRRORMESH_STATE_DIR/tls)')
  .option('--name <host>', 'DNS names for the new certificate (default: those of the current one)', collect)
  .option('--ip <addr>', 'IP addresses for the new certificate', collect)
  .option('--ca', 'make a new CA as well (every node then needs the new ca.pem)')
  .action(async (opts) => { process.exitCode = await (await import('./tls.js')).tlsRotateCommand(opts) })

program.parseAsync().catch((err: unknown) => {
  process.stderr.write(`mirrormesh: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exitCode = 1
})
