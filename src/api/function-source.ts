// Compiling a Function's source into the one ES module an instance loads. esbuild (a runtime
// dependency) strips TypeScript and bundles an uploaded file set at deploy time, so the sandbox
// needs nothing but Node and the module text, and a source that does not compile is refused at the
// API edge (422 naming the field and the line) instead of failing at its first invocation.
import { buildSync, type Message } from 'esbuild';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, normalize } from 'node:path';
import type { FieldCause } from './errors.js';
import { MAX_SOURCE_BYTES, type FunctionSource } from './functions.js';

export type CompileResult = { ok: true; code: string; sha256: string } | { ok: false; causes: FieldCause[] };

const cache = new Map<string, CompileResult>();
const CACHE_MAX = 256;

/** Compiles (memoized by the source's hash); `field` prefixes the error paths (default spec.source). */
export function compileFunctionSource(source: FunctionSource, field = 'spec.source'): CompileResult {
  const key = createHash('sha256').update(JSON.stringify(source)).digest('hex');
  const hit = cache.get(key);
  if (hit) return relabel(hit, field);
  const result = compile(source);
  if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value!);
  cache.set(key, result);
  return relabel(result, field);
}

function relabel(r: CompileResult, field: string): CompileResult {
  if (r.ok || field === 'spec.source') return r;
  return { ok: false, causes: r.causes.map((c) => ({ ...c, field: c.field.replace(/^spec\.source/, field) })) };
}

function compile(source: FunctionSource): CompileResult {
  const loader = source.language === 'typescript' ? 'ts' : 'js';
  const hasCode = source.code !== undefined;
  const hasFiles = source.files !== undefined;
  if (hasCode === hasFiles) return fail('spec.source', 'give exactly one of code, or files with entry');
  if (hasFiles && !source.entry) return fail('spec.source.entry', 'a bundle (files) needs the entry file');
  if (hasCode && source.entry) return fail('spec.source.entry', 'entry belongs to a bundle (files), not to code');
  const common = {
    bundle: true,
    write: false,
    format: 'esm' as const,
    platform: 'node' as const,
    target: 'node20',
    logLevel: 'silent' as const,
    // Bundled CommonJS dependencies may call require() for Node built-ins.
    banner: { js: "import { createRequire as __marinaRequire } from 'node:module'; const require = __marinaRequire(import.meta.url);" },
  };
  let dir: string | undefined;
  try {
    let out;
    if (hasCode) {
      out = buildSync({ ...common, stdin: { contents: source.code!, loader, sourcefile: `index.${loader}` } });
    } else {
      dir = mkdtempSync(join(tmpdir(), 'marina-fn-src-'));
      for (const [rel, text] of Object.entries(source.files!)) {
        const path = normalize(join(dir, rel));
        if (!path.startsWith(dir + '/')) return fail(`spec.source.files[${JSON.stringify(rel)}]`, 'path leaves the bundle');
        mkdirSync(dirname(path), { recursive: true });
        writeFileSync(path, text);
      }
      if (!(source.entry! in source.files!)) return fail('spec.source.entry', `no file ${JSON.stringify(source.entry)} in files`);
      out = buildSync({ ...common, entryPoints: [join(dir, source.entry!)], absWorkingDir: dir, outfile: join(dir, 'out.mjs') });
    }
    const code = out.outputFiles?.[0]?.text ?? "";
    if (Buffer.byteLength(code) > MAX_SOURCE_BYTES) return fail('spec.source', `compiled bundle is ${Buffer.byteLength(code)} bytes, more than ${MAX_SOURCE_BYTES}`);
    if (!/\bexport\s*\{[^}]*\bas default\b|\bexport default\b/.test(code)) return fail(hasCode ? 'spec.source.code' : 'spec.source.entry', 'the module has no default export (the handler)');
    return { ok: true, code, sha256: createHash('sha256').update(code).digest('hex') };
  } catch (err) {
    const errors = (err as { errors?: Message[] }).errors;
    if (!errors?.length) return fail('spec.source', `does not compile: ${(err as Error).message}`);
    return {
      ok: false,
      causes: errors.slice(0, 10).map((m) => {
        const file = m.location?.file?.replace(/^.*marina-fn-src-[^/]+\//, '') ?? '';
        const where = m.location ? ` (line ${m.location.line}, column ${m.location.column + 1})` : '';
        const field = hasCode ? 'spec.source.code' : file && file in source.files! ? `spec.source.files[${JSON.stringify(file)}]` : 'spec.source.files';
        return { field, message: `does not compile: ${m.text}${where}` };
      }),
    };
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}

function fail(field: string, message: string): CompileResult {
  return { ok: false, causes: [{ field, message }] };
}
