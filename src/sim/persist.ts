// Where the simulated world keeps its state, so that simulated machines outlive Marina like real
// ones do: a SIGKILLed Marina restarts and finds its sim machines, etcd members and Nodes as it
// left them. Every change is written through at once (one small row), since a kill gives no
// chance to flush. In memory only when no file is given (tests).
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { ClusterState, MachineState, NodeState } from './model.js';

export interface SimSnapshot {
  machines: MachineState[];
  clusters: ClusterState[];
  nodes: { project: string; cluster: string; node: NodeState }[];
}

export interface SimPersistence {
  load(): SimSnapshot;
  putMachine(key: string, m: MachineState): void;
  deleteMachine(key: string): void;
  putCluster(key: string, c: ClusterState): void;
  deleteCluster(key: string): void;
  putNode(clusterKey: string, node: NodeState): void;
  deleteNode(clusterKey: string, name: string): void;
  close(): void;
}

/** Keeps nothing: the world lives as long as the process. */
export const memoryPersistence = (): SimPersistence => ({
  load: () => ({ machines: [], clusters: [], nodes: [] }),
  putMachine: () => undefined,
  deleteMachine: () => undefined,
  putCluster: () => undefined,
  deleteCluster: () => undefined,
  putNode: () => undefined,
  deleteNode: () => undefined,
  close: () => undefined,
});

const SCHEMA = `
CREATE TABLE IF NOT EXISTS machines (key TEXT PRIMARY KEY, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS clusters (key TEXT PRIMARY KEY, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (cluster TEXT NOT NULL, name TEXT NOT NULL, json TEXT NOT NULL, PRIMARY KEY (cluster, name));
`;

/** One SQLite file. Only this process writes it (like Marina's own store). */
export function sqlitePersistence(path: string): SimPersistence {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  // A SIGKILL of the process loses nothing written to the OS; only a host crash could, and a
  // simulated world does not need to survive that.
  db.pragma('synchronous = OFF');
  db.exec(SCHEMA);
  const st = {
    putMachine: db.prepare<[string, string]>('INSERT OR REPLACE INTO machines (key, json) VALUES (?, ?)'),
    deleteMachine: db.prepare<[string]>('DELETE FROM machines WHERE key = ?'),
    putCluster: db.prepare<[string, string]>('INSERT OR REPLACE INTO clusters (key, json) VALUES (?, ?)'),
    deleteCluster: db.prepare<[string]>('DELETE FROM clusters WHERE key = ?'),
    deleteClusterNodes: db.prepare<[string]>('DELETE FROM nodes WHERE cluster = ?'),
    putNode: db.prepare<[string, string, string]>('INSERT OR REPLACE INTO nodes (cluster, name, json) VALUES (?, ?, ?)'),
    deleteNode: db.prepare<[string, string]>('DELETE FROM nodes WHERE cluster = ? AND name = ?'),
  };
  return {
    load() {
      const machines = db.prepare<[], { json: string }>('SELECT json FROM machines').all().map((r) => JSON.parse(r.json) as MachineState);
      const clusters = db.prepare<[], { json: string }>('SELECT json FROM clusters').all().map((r) => JSON.parse(r.json) as ClusterState);
      const nodes = db
        .prepare<[], { cluster: string; json: string }>('SELECT cluster, json FROM nodes')
        .all()
        .map((r) => {
          const slash = r.cluster.indexOf('/');
          return { project: r.cluster.slice(0, slash), cluster: r.cluster.slice(slash + 1), node: JSON.parse(r.json) as NodeState };
        });
      return { machines, clusters, nodes };
    },
    putMachine: (key, m) => void st.putMachine.run(key, JSON.stringify(m)),
    deleteMachine: (key) => void st.deleteMachine.run(key),
    putCluster: (key, c) => void st.putCluster.run(key, JSON.stringify(c)),
    deleteCluster: (key) => {
      st.deleteCluster.run(key);
      st.deleteClusterNodes.run(key);
    },
    putNode: (cluster, node) => void st.putNode.run(cluster, node.name, JSON.stringify(node)),
    deleteNode: (cluster, name) => void st.deleteNode.run(cluster, name),
    close: () => db.close(),
  };
}
