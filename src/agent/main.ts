// Entry point of the machine agent: one process per local machine, started detached by Marina's
// local provider (so it leads its own process group; Marina stops the machine by signalling the
// group).
//
//   node dist/src/agent/main.js --config <dataDir>/agent.json [--machine-uid <uid>]
//
// --machine-uid is not read here: it tags the process with the uid of its Machine object, so the
// provider can tell whose agent it is from /proc alone (src/providers/local/processes.ts).
// Logs go to <dataDir>/logs/agent.log (pino, JSON lines); children log to <dataDir>/logs/<name>.log.
// Exit codes: 0 after SIGTERM/SIGINT, 2 for a bad config, 1 if it cannot start at all.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { MachineAgent } from './agent.js';
import { AgentConfigError, loadAgentConfig } from './config.js';
import { readHeld } from './control.js';

function configPath(argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--config') return argv[i + 1];
    if (a.startsWith('--config=')) return a.slice('--config='.length);
  }
  return undefined;
}

async function main(): Promise<void> {
  const path = configPath(process.argv.slice(2));
  if (!path) {
    process.stderr.write('usage: node dist/src/agent/main.js --config <dir>/agent.json\n');
    process.exit(2);
  }
  let config;
  try {
    config = await loadAgentConfig(path);
  } catch (err) {
    process.stderr.write(`${err instanceof AgentConfigError ? err.message : String(err)}\n`);
    process.exit(2);
  }
  const logDir = join(config.dataDir, 'logs');
  mkdirSync(logDir, { recursive: true });
  const log = pino(
    { base: { machine: config.machine }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ dest: join(logDir, 'agent.log'), sync: true, mkdir: true }),
  );
  // Services a day-2 operation held down stay down across an agent restart.
  const agent = new MachineAgent(config, { log, held: await readHeld(config.dataDir) });

  let exiting = false;
  const shutdown = (signal: string) => {
    if (exiting) return;
    exiting = true;
    log.info({ signal }, 'shutdown requested');
    // Never hang: children get stopGrace to exit, then everything has a few seconds more.
    const hardStop = setTimeout(() => {
      log.error({}, 'shutdown took too long; exiting');
      process.exit(1);
    }, (((config.stopGraceSeconds ?? 10) + 10) * Math.max(1, config.processes.length) + (config.node ? 60 : 0)) * 1000);
    hardStop.unref();
    agent.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  // The agent must outlive bugs in one loop: log and carry on (health endpoints tell the truth).
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'));
  process.on('uncaughtException', (err) => log.error({ err }, 'uncaught exception'));

  try {
    await agent.start();
  } catch (err) {
    log.error({ err }, 'agent failed to start');
    process.stderr.write(`agent failed to start: ${String(err)}\n`);
    await agent.stop().catch(() => undefined);
    process.exit(1);
  }
  if (!exiting) log.info({ processes: config.processes.map((p) => p.name), kubelet: Boolean(config.kubelet) }, 'agent started');
}

void main();
