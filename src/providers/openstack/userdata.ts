// A server's user data: cloud-init that makes it join its cluster the way an imported server does
// (`marina agent join`, see src/joinagent), as a systemd service so it keeps running and resumes
// after a reboot without the token (the agent keeps its join in its data directory).
//
// The token sits in a 0600 file rather than on the command line (process lists, journal). It is
// single-use and bound to the machine's uid: a copy read from the metadata service later is void.
// The image must carry the `marina` command (Node.js 20+); see docs/providers.md.
import { stringify } from 'yaml';
import type { JoinInstructions } from './config.js';

const AGENT_DATA_DIR = '/var/lib/marina-agent';
export const TOKEN_FILE = '/etc/marina/join-token';
const AGENT_UNIT = 'marina-agent.service';

/** The agent's command line: `marina agent join` as an imported server runs it, the token from a file. */
function joinCommand(join: JoinInstructions, node: { address: string; hostname: string }): string[] {
  return ['marina', 'agent', 'join', '--url', join.url, '--token-file', TOKEN_FILE, '--ca-pin', join.caPin, '--data-dir', AGENT_DATA_DIR, '--node-ip', node.address, '--hostname', node.hostname];
}

export function renderUserData(join: JoinInstructions, node: { address: string; hostname: string }): string {
  const unit = [
    '[Unit]',
    'Description=Marina machine agent (joins the cluster, runs its services)',
    'Wants=network-online.target',
    'After=network-online.target',
    '',
    '[Service]',
    `ExecStart=${joinCommand(join, node).join(' ')}`,
    'Restart=always',
    'RestartSec=5',
    'KillMode=mixed',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
  const config = {
    hostname: node.hostname,
    write_files: [
      { path: TOKEN_FILE, permissions: '0600', owner: 'root:root', content: `${join.token}\n` },
      { path: `/etc/systemd/system/${AGENT_UNIT}`, permissions: '0644', owner: 'root:root', content: unit },
    ],
    runcmd: [
      ['systemctl', 'daemon-reload'],
      ['systemctl', 'enable', '--now', AGENT_UNIT],
    ],
  };
  return `#cloud-config\n${stringify(config, { lineWidth: 0 })}`;
}
