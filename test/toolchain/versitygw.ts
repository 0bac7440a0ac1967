// An S3 server for tests: VersityGW (from scripts/toolchain/s3.sh) with its POSIX backend on a
// temporary directory, listening on a free port of a loopback address, with its own root keys.
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { findFreePort, isPortListening, isProcessGroupAlive, type SpawnedProcess, spawnLogged, stopProcessGroup, tailFile } from '../../src/proc/index.js';

export interface S3Server {
  /** http://<host>:<port> — path-style addressing (http://host:port/<bucket>/<key>). */
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Directory of the POSIX backend: one subdirectory per bucket, one file per object. */
  dataDir: string;
  proc: SpawnedProcess;
  /** Stops the server (process group); resolves true when nothing of it is left. */
  stop(): Promise<boolean>;
}

export async function startVersityGw(options: { versitygw: string; dir: string; host?: string }): Promise<S3Server> {
  const host = options.host ?? '127.0.0.1';
  const dataDir = join(options.dir, 'data');
  mkdirSync(dataDir, { recursive: true });
  const accessKeyId = `marina${randomBytes(4).toString('hex')}`;
  const secretAccessKey = randomBytes(20).toString('hex');
  const port = await findFreePort(host);
  const proc = await spawnLogged({
    command: options.versitygw,
    args: ['--port', `${host}:${port}`, 'posix', dataDir],
    logFile: join(options.dir, 'versitygw.log'),
    // Keys through the environment so they do not show in the process list.
    env: { ...process.env, ROOT_ACCESS_KEY: accessKeyId, ROOT_SECRET_KEY: secretAccessKey },
  });
  const stop = async (): Promise<boolean> => {
    await stopProcessGroup(proc.pid, { graceMs: 5_000 }).catch(() => undefined);
    return !isProcessGroupAlive(proc.pid);
  };
  for (let i = 0; !(await isPortListening(host, port, 200)); i++) {
    if (proc.exitInfo() || i > 150) {
      await stop();
      throw new Error(`versitygw did not start listening on ${host}:${port}\n${tailFile(proc.logFile, 2000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { endpoint: `http://${host}:${port}`, region: 'us-east-1', accessKeyId, secretAccessKey, dataDir, proc, stop };
}
