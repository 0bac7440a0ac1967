// The join as a provider that boots servers sees it (src/providers/openstack/config.ts MachineJoins):
// a single-use token bound to the Machine the server is for, which makes the server's agent join
// *as* that Machine and run its bootstrap (src/joins/service.ts joinAsMachine); what the agent
// reports since; and forgetting both once the server is gone. The agent speaks the same join
// protocol as an imported server's (src/server/routes/joins.ts), so its records live with the
// import provider's, marked as bound to the booting provider.
import { ApiError } from '../api/errors.js';
import { ProviderError, type MachineBootstrap, type MachineRef } from '../providers/contract.js';
import type { ImportProvider } from '../providers/import/index.js';
import type { AgentReport, JoinInstructions, MachineJoins } from '../providers/openstack/config.js';
import type { JoinService } from './service.js';

/** Where joining servers reach Marina, and the pin of its CA; undefined while Marina serves plain HTTP. */
export type JoinTarget = () => { url: string; caPin: string } | undefined;

export class BoundMachineJoins implements MachineJoins {
  constructor(
    private readonly o: {
      service: JoinService;
      imports: ImportProvider;
      target: JoinTarget;
      /** Who issues the tokens (their createdBy), e.g. the provider's name. */
      issuer: string;
    },
  ) {}

  async issue(machine: MachineRef, bootstrap: MachineBootstrap, marinaURL?: string): Promise<JoinInstructions> {
    const target = this.o.target();
    if (!target) {
      throw new ProviderError('NoJoinURL', 'Marina serves plain HTTP: a server cannot check whom it joins; start Marina with --tls auto (or listening beyond loopback)', true);
    }
    try {
      const token = await this.o.service.issueMachineToken(machine, bootstrap, `system:provider:${this.o.issuer}`);
      return { url: marinaURL ?? target.url, token, caPin: target.caPin };
    } catch (err) {
      if (err instanceof ApiError && err.code === 404) throw new ProviderError('MachineGone', `machine ${machine.name} (uid ${machine.uid}) no longer exists`, true);
      throw err;
    }
  }

  async report(machine: MachineRef): Promise<AgentReport | undefined> {
    const r = this.o.imports.boundRecord(machine);
    if (!r) return undefined;
    return {
      healthy: r.state === 'started' && r.health?.ok === true,
      ...(r.health?.message ? { message: r.health.message } : {}),
      ...(r.lastSeenAt ? { lastSeenAt: r.lastSeenAt } : {}),
    };
  }

  async forget(machine: MachineRef): Promise<void> {
    await this.o.service.revokeMachineTokens(machine);
    this.o.imports.forgetBound(machine);
  }
}
