// The `marina` command tree and the one place where failures become exit codes.
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { accountCommands } from './commands/account.js';
import { agentCommand } from './commands/agent.js';
import { addonCommand } from './commands/addons.js';
import { alertsCommand, channelCommand } from './commands/alerts.js';
import { clusterCommand } from './commands/cluster.js';
import { crdsCommand } from './commands/crds.js';
import { machineCommand, operationCommand } from './commands/operations.js';
import { functionCommand, pipelineCommand } from './commands/functions.js';
import { applyCommand, deleteCommand, describeCommand, getCommand, watchCommand } from './commands/resources.js';
import { serverCommand } from './commands/server.js';
import { describeError, EXIT } from './errors.js';
import { err } from './session.js';
import { toolchainCommand } from './toolchain.js';

function packageVersion(): string {
  try {
    // dist/src/cli/program.js → package.json at the repository root
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

const CONNECTION_OPTIONS = (): Option[] => [
  new Option('--server <url>', 'server URL (default: MARINA_URL, the current context, or http://127.0.0.1:7443)'),
  new Option('--token <token>', 'bearer token (default: MARINA_TOKEN or the current context)'),
  new Option('--context <name>', 'use this context of the CLI config instead of the current one'),
];

export function buildProgram(): Command {
  const program = new Command('marina')
    .description('Marina: self-hosted managed Kubernetes. Talks to a Marina server over its REST API.')
    .version(packageVersion(), '-V, --version')
    // Root options only before the subcommand, so `cluster create --version v1.36.3` is the
    // subcommand's; the connection options are repeated on every leaf command instead.
    .enablePositionalOptions()
    .addHelpText(
      'after',
      `
Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 conflict/already exists, 5 invalid input,
6 unauthorized/forbidden, 7 timeout.
Config: $MARINA_CONFIG or \${XDG_CONFIG_HOME:-~/.config}/marina/config.yaml.`,
    );
  for (const o of CONNECTION_OPTIONS()) program.addOption(o);

  program.addCommand(serverCommand());
  program.addCommand(crdsCommand());
  for (const c of accountCommands()) program.addCommand(c);
  program.addCommand(getCommand());
  program.addCommand(describeCommand());
  program.addCommand(applyCommand());
  program.addCommand(deleteCommand());
  program.addCommand(watchCommand());
  program.addCommand(clusterCommand());
  program.addCommand(operationCommand());
  program.addCommand(machineCommand());
  program.addCommand(alertsCommand());
  program.addCommand(channelCommand());
  program.addCommand(functionCommand());
  program.addCommand(pipelineCommand());
  program.addCommand(addonCommand());
  program.addCommand(toolchainCommand());
  program.addCommand(agentCommand());

  // Commands built standalone (new Command) do not inherit settings; apply them to the whole tree.
  const configure = (c: Command) => {
    c.exitOverride();
    c.showHelpAfterError('(add --help for usage)');
    if (c.commands.length === 0 && c.name() !== 'server' && c.parent?.name() !== 'toolchain' && c.parent?.name() !== 'agent') {
      for (const o of CONNECTION_OPTIONS()) {
        if (!c.options.some((x) => x.long === o.long)) c.addOption(o);
      }
    }
    c.commands.forEach(configure);
  };
  configure(program);
  return program;
}

/** Parses and runs `argv` (process.argv shape); returns the exit code. Never throws. */
export async function run(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
    const d = describeError(e);
    if (d.message) err(`error: ${d.message}`);
    return d.exitCode;
  }
}
