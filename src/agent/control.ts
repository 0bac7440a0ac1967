// Day-2 actions on one machine, asked by Marina over the agent's HTTP endpoint with the machine's
// control token: hold (stop and keep down) and release services, and restore etcd's data
// directory from a snapshot. Provider-neutral by design: any machine that runs this agent (local
// process groups now, VMs of other providers later) offers the same actions, and a provider only
// has to carry the calls (and the snapshot bytes) to it.
//
//   POST /v1/services/hold     {"names": ["kube-apiserver", ...], "immediate": false}
//                                                                  → stopped (immediate: SIGKILL), not restarted
//   POST /v1/services/release  {"names": [...]}                    → started again
//   PUT  /v1/etcd/restore?id=&name=&initialCluster=&peerURL=&token=&sha256=&bumpRevision=
//        body: the snapshot file                                   → etcd's data dir replaced
//
// Every action is idempotent and survives an agent restart: held services are recorded in
// `held.json`, a finished restore in `restore/<id>.done`, so Marina can simply repeat a call after
// a crash of its own.
import { execFile } from 'node:child_process';
import { createHash, timingSafeEqual } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import type http from 'node:http';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import type { AgentControlConfig } from './config.js';
import type { ProcessSupervisor } from './supervisor.js';
import type { KubeletLog } from './virtual-kubelet.js';

const execFileAsync = promisify(execFile);

export const HELD_FILE = 'held.json';

/** The services held down when the agent last stopped (none when the file is missing or unreadable). */
export async function readHeld(dataDir: string): Promise<string[]> {
  try {
    const parsed: unknown = JSON.parse(await readFile(join(dataDir, HELD_FILE), 'utf8'));
    return Array.isArray(parsed) ? parsed.filter((x): x is string => typeof x === 'string') : [];
  } catch {
    return [];
  }
}

class ControlError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface RestoreParams {
  id: string;
  name: string;
  initialCluster: string;
  peerURL: string;
  clusterToken: string;
  sha256: string;
  bumpRevision: number;
}

export class MachineControl {
  /** One action at a time: a hold racing a restore would see half of it. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly cfg: AgentControlConfig,
    private readonly dataDir: string,
    private readonly supervisor: ProcessSupervisor,
    private readonly log: KubeletLog,
  ) {}

  /** Handles a control request; false when the path is not a control path. */
  async handle(req: http.IncomingMessage, res: http.ServerResponse, path: string, query: URLSearchParams): Promise<boolean> {
    if (!path.startsWith('/v1/')) return false;
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify(body)}\n`);
    };
    try {
      this.authorize(req);
      const result = await this.serialized(() => this.route(req, path, query));
      json(200, result);
    } catch (err) {
      req.resume();
      const status = err instanceof ControlError ? err.status : 500;
      if (status >= 500) this.log.error({ err, path }, 'control action failed');
      json(status, { error: (err as Error).message });
    }
    return true;
  }

  private authorize(req: http.IncomingMessage): void {
    const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    const given = Buffer.from(m?.[1] ?? '');
    const want = Buffer.from(this.cfg.token);
    if (given.length !== want.length || !timingSafeEqual(given, want)) throw new ControlError(401, 'missing or wrong control token');
  }

  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async route(req: http.IncomingMessage, path: string, query: URLSearchParams): Promise<unknown> {
    if (path === '/v1/services' && req.method === 'GET') return this.state();
    if (path === '/v1/services/hold' && req.method === 'POST') {
      const { names, immediate } = await namesIn(req);
      await this.supervisor.hold(names, { immediate }).catch((err: Error) => {
        throw new ControlError(400, err.message);
      });
      await this.persistHeld();
      this.log.info({ names }, 'services held');
      return this.state();
    }
    if (path === '/v1/services/release' && req.method === 'POST') {
      const { names } = await namesIn(req);
      try {
        this.supervisor.release(names);
      } catch (err) {
        throw new ControlError(400, (err as Error).message);
      }
      await this.persistHeld();
      this.log.info({ names }, 'services released');
      return this.state();
    }
    if (path === '/v1/etcd/restore' && req.method === 'PUT') return this.restore(req, restoreParams(query));
    throw new ControlError(404, `no control action ${req.method} ${path}`);
  }

  private state(): { processes: ReturnType<ProcessSupervisor['processes']>; held: string[] } {
    return { processes: this.supervisor.processes(), held: this.supervisor.heldNames() };
  }

  private async persistHeld(): Promise<void> {
    const path = join(this.dataDir, HELD_FILE);
    await writeFile(`${path}.tmp`, JSON.stringify(this.supervisor.heldNames()), { mode: 0o600 });
    await rename(`${path}.tmp`, path);
  }

  /**
   * Restores etcd's data directory from the snapshot in the request body: written to a file and
   * checked against its SHA-256, `etcdutl snapshot restore` into a fresh directory, then swapped
   * in place of the old one (kept beside it as `<dir>.before-<id>`). etcd must be held.
   */
  private async restore(req: http.IncomingMessage, p: RestoreParams): Promise<unknown> {
    const { etcdDataDir, etcdutl } = this.cfg;
    if (!etcdDataDir || !etcdutl) throw new ControlError(409, 'this machine runs no etcd member (or the agent has no etcdutl)');
    const workDir = join(this.dataDir, 'restore');
    const done = join(workDir, `${p.id}.done`);
    if (existsSync(done)) {
      req.resume();
      return { restored: true, already: true, id: p.id };
    }
    if (!this.supervisor.heldNames().includes('etcd')) throw new ControlError(409, 'etcd is running: hold it first (POST /v1/services/hold)');
    await mkdir(workDir, { recursive: true, mode: 0o700 });
    const file = join(workDir, `${p.id}.db`);
    const hash = createHash('sha256');
    await pipeline(
      req,
      async function* (source: AsyncIterable<Buffer>) {
        for await (const chunk of source) {
          hash.update(chunk);
          yield chunk;
        }
      },
      createWriteStream(file, { mode: 0o600 }),
    );
    const got = hash.digest('hex');
    if (got !== p.sha256) {
      await rm(file, { force: true });
      throw new ControlError(422, `snapshot arrived with SHA-256 ${got}, expected ${p.sha256}`);
    }
    const fresh = `${etcdDataDir}.restore-${p.id}`;
    await rm(fresh, { recursive: true, force: true });
    try {
      await execFileAsync(
        etcdutl,
        [
          'snapshot',
          'restore',
          file,
          `--data-dir=${fresh}`,
          `--name=${p.name}`,
          `--initial-cluster=${p.initialCluster}`,
          `--initial-advertise-peer-urls=${p.peerURL}`,
          `--initial-cluster-token=${p.clusterToken}`,
          `--bump-revision=${p.bumpRevision}`,
          '--mark-compacted',
        ],
        { timeout: 10 * 60_000, maxBuffer: 16 * 1024 * 1024 },
      );
    } catch (err) {
      await rm(fresh, { recursive: true, force: true });
      const e = err as { stderr?: string; message: string };
      throw new ControlError(422, `etcdutl snapshot restore failed: ${(e.stderr || e.message).trim().slice(-2000)}`);
    }
    // The swap: the old directory moves aside once (a repeated call after a crash between the two
    // renames finds it moved already), then the restored one takes its place.
    const before = `${etcdDataDir}.before-${p.id}`;
    if (existsSync(etcdDataDir) && !existsSync(before)) await rename(etcdDataDir, before);
    else await rm(etcdDataDir, { recursive: true, force: true });
    await rename(fresh, etcdDataDir);
    await writeFile(done, new Date().toISOString(), { mode: 0o600 });
    await rm(file, { force: true });
    this.log.info({ id: p.id, member: p.name }, 'etcd data directory restored from snapshot');
    return { restored: true, already: false, id: p.id };
  }
}

async function namesIn(req: http.IncomingMessage): Promise<{ names: string[]; immediate: boolean }> {
  let text = '';
  for await (const chunk of req) {
    text += String(chunk);
    if (text.length > 64 * 1024) throw new ControlError(413, 'body too large');
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new ControlError(400, 'body must be JSON {"names": [...]}');
  }
  const { names, immediate } = body as { names?: unknown; immediate?: unknown };
  if (!Array.isArray(names) || names.length === 0 || names.some((n) => typeof n !== 'string')) throw new ControlError(400, 'names: must be a non-empty array of process names');
  if (immediate !== undefined && typeof immediate !== 'boolean') throw new ControlError(400, 'immediate: must be true or false');
  return { names: names as string[], immediate: immediate === true };
}

const ID = /^[a-z0-9][-a-z0-9.]{0,127}$/;

function restoreParams(q: URLSearchParams): RestoreParams {
  const need = (k: string, re?: RegExp): string => {
    const v = q.get(k);
    if (!v || (re && !re.test(v))) throw new ControlError(400, `query parameter ${k} is missing or malformed`);
    return v;
  };
  const bump = Number(q.get('bumpRevision') ?? '1000000000');
  if (!Number.isSafeInteger(bump) || bump < 0) throw new ControlError(400, 'query parameter bumpRevision must be a non-negative integer');
  return {
    id: need('id', ID),
    name: need('name'),
    initialCluster: need('initialCluster'),
    peerURL: need('peerURL', /^https?:\/\//),
    clusterToken: need('token'),
    sha256: need('sha256', /^[0-9a-f]{64}$/),
    bumpRevision: bump,
  };
}
