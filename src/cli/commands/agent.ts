// `marina agent join`: run on a user's server (as root) to make it a worker of a cluster.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { pino } from 'pino';
import { isPin } from '../../joins/pin.js';
import { CliError, EXIT } from '../errors.js';
import { err } from '../session.js';

export function agentCommand(): Command {
  const cmd = new Command('agent').description("Marina's agent on a user's own server");
  cmd
    .command('join')
    .description('join this server to a cluster as a worker (the line `marina cluster join-token create` printed); keeps running until stopped or removed')
    .requiredOption('--url <url>', "Marina's URL (https)")
    .option('--token <token>', 'the join token (first join only)')
    .option('--token-file <path>', 'read the join token from a file instead (keeps it out of the process list)')
    .requiredOption('--ca-pin <sha256:hex>', "pin of Marina's CA; checked before the token is sent")
    .option('--data-dir <dir>', "the agent's state, binaries and the node's files", '/var/lib/marina-agent')
    .option('--node-ip <ip>', "this server's node IP (default: its address on the route to Marina)")
    .option('--hostname <name>', 'the name this server reports (default: its host name)')
    .action(async (opts: { url: string; token?: string; tokenFile?: string; caPin: string; dataDir: string; nodeIp?: string; hostname?: string }) => {
      if (!opts.url.startsWith('https://')) throw new CliError('--url must be https:// (the CA pin is checked over TLS)', EXIT.usage);
      if (!isPin(opts.caPin)) throw new CliError('--ca-pin must look like sha256:<64 hex digits>', EXIT.usage);
      if (process.getuid?.() !== 0) throw new CliError('the agent runs containerd and kubelet: run it as root', EXIT.usage);
      const token = opts.token ?? (opts.tokenFile ? readFileSync(opts.tokenFile, 'utf8').trim() : undefined);
      // Imported lazily: the node runtime is only needed here.
      const { runJoinAgent } = await import('../../joinagent/run.js');
      const log = pino({ timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ dest: join(opts.dataDir, 'agent.log'), sync: true, mkdir: true }));
      const ctl = new AbortController();
      const stop = () => ctl.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      const outcome = await runJoinAgent({
        url: opts.url.replace(/\/+$/, ''),
        ...(token ? { token } : {}),
        caPin: opts.caPin,
        dataDir: opts.dataDir,
        ...(opts.nodeIp ? { nodeIp: opts.nodeIp } : {}),
        ...(opts.hostname ? { hostname: opts.hostname } : {}),
        log,
        say: (line) => err(`marina agent: ${line}`),
        signal: ctl.signal,
      });
      err(`marina agent: ${outcome === 'left' ? 'done' : 'stopped'}`);
    });
  return cmd;
}
