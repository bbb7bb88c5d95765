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

const hubOptions = (cmd: Command) => cmd
  .option('--hub <url>', 'hub HTTP API (default $HUB_URL or http://127.0.0.1:8080)')
  .option('--token <token>', 'admin token (default $MIRRORMESH_ADMIN_TOKEN)')

hubOptions(program.command('nodes').description('list every node: state, heartbeat age, mode, clock skew, versions'))
  .option('--json', 'print JSON instead of a table')
  .action(async (opts) => { process.exitCode = await (await import('./nodes.js')).nodesCommand(opts) })

const node = program.command('node').description('manage node credentials (on the hub)')
const credsOption = () => new Option('--credentials-file <path>', 'credentials file (default: $CREDENTIALS_FILE or $MIRRORMESH_STATE_DIR/credentials.json)')
node.command('add <id>').description('create credentials for a node and print its password once')
  .addOption(credsOption())
  .addOption(new Option('--role <role>', 'what the credential may do').choices(['node', 'observer', 'automation', 'hub']).default('node'))
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
  .option('--automation <username...>', 'automation usernames (Node-RED lights: zigbee2mqtt/+/set)', [])
  .action(async (opts: { base: string; hub: string[]; observer: string[]; automation: string[] }) => {
    const { renderMosquittoAcl } = await import('@mirrormesh/broker')
    process.stdout.write(renderMosquittoAcl(opts.base, { hubs: opts.hub, observers: opts.observer, automations: opts.automation }))
  })

broker.command('mosquitto-conf').description('print a mosquitto.conf with what Mosquitto can enforce: credentials, ACL, size limits, listeners')
  .requiredOption('--password-file <path>', 'Mosquitto password_file (mosquitto_passwd)')
  .requiredOption('--acl-file <path>', 'acl_file written by `mirrormesh broker mosquitto-acl`')
  .option('--listen <host:port>', 'MQTT over TCP', '127.0.0.1:1883')
  .option('--ws <host:port>', 'MQTT over WebSocket')
  .option('--tls <host:port>', 'MQTT over TLS (with --cert and --key)')
  .option('--cert <path>', 'TLS certificate').option('--key <path>', 'TLS private key')
  .option('--persistence-dir <path>', 'keep retained messages and sessions here')
  .action(async (opts: { passwordFile: string; aclFile: string; listen: string; ws?: string; tls?: string; cert?: string; key?: string; persistenceDir?: string }) => {
    const { renderMosquittoConf } = await import('@mirrormesh/broker')
    const hostPort = (v: string) => { const i = v.lastIndexOf(':'); return { host: v.slice(0, i) || '127.0.0.1', port: Number(v.slice(i + 1)) } }
    if (opts.tls && !(opts.cert && opts.key)) throw new Error('--tls needs --cert and --key')
    const listeners: Parameters<typeof renderMosquittoConf>[0]['listeners'] = [{ ...hostPort(opts.listen), protocol: 'mqtt' }]
    if (opts.ws) listeners.push({ ...hostPort(opts.ws), protocol: 'websockets' })
    if (opts.tls) listeners.push({ ...hostPort(opts.tls), protocol: 'mqtt', tls: { certfile: opts.cert!, keyfile: opts.key! } })
    process.stdout.write(renderMosquittoConf({ passwordFile: opts.passwordFile, aclFile: opts.aclFile, listeners, persistenceDir: opts.persistenceDir }))
  })

program.command('doctor').description('validate configuration and report every problem at once')
  .addOption(new Option('--role <role>', 'which process to check').choices(['hub', 'agent']))
  .action(async (opts) => { process.exitCode = await (await import('./doctor.js')).doctorCommand(opts) })

// Operator commands, part A (README "Operator commands"): status, drain, restart --safe, ask, bundle.
hubOptions(program.command('pair').description('print a one-time code (10 minutes) that pairs one browser with the hub as its own node'))
  .option('--url <url>', 'the hub page\'s LAN address, to print a link with the code in it').option('--json', 'print JSON')
  .action(async (opts) => { process.exitCode = await (await import('./pair.js')).pairCommand(opts) })
hubOptions(program.command('status').description('the hub on one screen: ready/draining, broker, nodes, turns, engine health, bundle; exit 0 ready, 2 not ready, 1 unreachable'))
  .option('--json', 'print JSON')
  .action(async (opts) => { process.exitCode = await (await import('./status.js')).statusCommand(opts) })

hubOptions(program.command('drain').description('drain the hub: new turns hear "busy", running ones finish (DRAIN_TIMEOUT_MS), then it exits 0 and systemd starts it again'))
  .option('--wait', 'wait until the hub has exited; print how many turns finished')
  .option('--timeout-s <s>', 'give up waiting after this long', '120')
  .option('--json', 'print JSON')
  .action(async (opts) => { process.exitCode = await (await import('./drain.js')).drainCommand(opts) })

hubOptions(program.command('restart').description('safe restart: drain, wait for the old process to exit and the new one (systemd Restart=always) to be ready; exit 0 when back'))
  .option('--safe', 'drain first (required)')
  .option('--timeout-s <s>', 'give up after this long, all steps together', '120')
  .option('--json', 'print JSON')
  .action(async (opts) => { process.exitCode = await (await import('./drain.js')).restartCommand(opts) })

program.command('ask [text]').description('one voice turn end to end as a node over MQTT (text spoken with espeak-ng, or --wav): prints transcript, reply, timings; exit 2 turn_error, 3 busy, 4 timeout')
  .option('--node <id>', 'the node the turn comes from (default: the username)')
  .option('--wav <file>', 'speech to send instead of text (16-bit PCM WAV, any rate)')
  .option('--url <url>', 'broker URL', process.env.MQTT_URL ?? 'mqtt://127.0.0.1:1883')
  .option('--username <name>', 'MQTT username (default $MQTT_USERNAME, $NODE_ID, or --node)')
  .option('--password <password>', 'MQTT password (default $MQTT_PASSWORD)')
  .option('--base <topic>', 'base topic', process.env.BASE_TOPIC ?? 'mirrormesh')
  .option('--voice <voice>', 'espeak-ng voice', 'en-us')
  .option('--timeout-ms <ms>', 'wait this long after the end of speech for the whole reply', '30000')
  .option('--json', 'print JSON')
  .option('--typed', 'send the words as a text turn (POST /api/turns with the admin token): no speech, no ASR')
  .option('--user <name>', 'with --typed: remember and recall under user:<name> instead of the room')
  .option('--hub <url>', 'with --typed: hub HTTP API (default $HUB_URL or http://127.0.0.1:8080)')
  .option('--token <token>', 'with --typed: admin token (default $MIRRORMESH_ADMIN_TOKEN or <state dir>/admin-token)')
  .action(async (text: string | undefined, opts) => { process.exitCode = await (await import('./ask.js')).askCommand(text, opts) })

// Long-term memory (README "Memory").
const memory = program.command('memory').description('long-term memory per key (room:<room>, node:<id>, user:<name>): list, export, forget')
hubOptions(memory.command('list <key>').description('newest memories of a key'))
  .option('--limit <n>', 'how many', '50')
  .option('--kind <kind>', 'fact (told with "remember that …") or turn')
  .option('--json', 'print JSON')
  .action(async (key: string, opts) => { process.exitCode = await (await import('./memory.js')).memoryList(key, opts) })
hubOptions(memory.command('export <key>').description('every memory of a key as JSON on stdout'))
  .action(async (key: string, opts) => { process.exitCode = await (await import('./memory.js')).memoryExport(key, opts) })
hubOptions(memory.command('forget <key>').description('delete one memory (--id) or every memory of a key (--all)'))
  .option('--id <id>', 'the memory to delete (from `memory list`)')
  .option('--all', 'delete every memory of the key')
  .option('--json', 'print JSON')
  .action(async (key: string, opts) => { process.exitCode = await (await import('./memory.js')).memoryForget(key, opts) })

hubOptions(program.command('bundle').description('bug bundle for one turn: its hub log lines and those around it, engine health, versions, names (never values) of the settings set, as a .tar.gz'))
  .requiredOption('--turn <id>', 'turn id (from `mirrormesh ask`, or turnId in the hub log)')
  .option('--node <id>', 'the node whose turn it is (turn ids are numbered per node)')
  .option('--out <file>', 'archive to write (default ./mirrormesh-bug-turn-<id>-<time>.tar.gz)')
  .option('--context-s <s>', 'log lines this long before and after the turn', '10')
  .option('--json', 'print JSON')
  .action(async (opts) => { process.exitCode = await (await import('./bug-bundle.js')).bugBundleCommand(opts, pkg.version) })
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
// Backup, restore, keys and node rebuild (ops/src/backup.ts, keys.ts, rebuild.ts).
const stateDirOption = () => new Option('--state-dir <path>', 'the hub\'s state dir (default: $MIRRORMESH_STATE_DIR or .state/hub)')
program.command('backup <file>').description('write the hub\'s state (credentials, node config, bundle, journals, TLS, retained messages) to one .tar.gz, mode 0600; works while the hub runs')
  .addOption(stateDirOption())
  .option('--hub <url>', 'hub HTTP API, when its hub.pid does not say (default: from <state dir>/hub.pid)')
  .addOption(credsOption())
  .option('--json', 'print JSON')
  .action(async (file: string, opts) => { process.exitCode = await (await import('./backup.js')).backupCommand(file, opts) })
program.command('restore <file>').description('verify a backup completely, then swap it in as the state dir (the hub must be stopped); the old dir is kept aside')
  .addOption(stateDirOption())
  .option('--json', 'print JSON')
  .action(async (file: string, opts) => { process.exitCode = await (await import('./backup.js')).restoreCommand(file, opts) })
const keys = program.command('keys').description('rotate secrets')
keys.command('rotate [node]').description('give a node a new MQTT password (printed once; the old one works for --grace); without a node, rotate the hub\'s admin token')
  .option('--grace <duration>', 'how long the old password keeps working (e.g. 10m, 24h, 0)', '24h')
  .addOption(stateDirOption())
  .addOption(credsOption())
  .option('--json', 'print JSON')
  .action(async (node: string | undefined, opts) => { process.exitCode = await (await import('./keys.js')).keysRotateCommand(node, opts) })
node.command('rebuild <id>').description('wipe a node\'s cache, resync its config from the hub and re-register it (waits for the node to confirm); --new-identity moves it to a new id')
  .option('--new-identity <new-id>', 'give the node this new id (new credential, config copied); the old id is retired once the node confirms')
  .option('--timeout <duration>', 'how long to wait for the node to confirm', '30s')
  .option('--hub <url>', 'hub HTTP API (default: $HUB_URL, else from <state dir>/hub.pid, else http://127.0.0.1:8080)')
  .addOption(stateDirOption())
  .option('--json', 'print JSON')
  .action(async (id: string, opts) => { process.exitCode = await (await import('./rebuild.js')).nodeRebuildCommand(id, opts) })

program.parseAsync().catch((err: unknown) => {
  process.stderr.write(`mirrormesh: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exitCode = 1
})
