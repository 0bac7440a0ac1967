// Entry point of the `marina` binary (bin/marina.js imports the compiled form of this file).
import { run } from './program.js';

// `marina get clusters | head -1` closes the pipe early; that is not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
    throw e;
  });
}

const code = await run(process.argv);
process.exitCode = code;
// Exit as soon as the output is flushed: an idle keep-alive socket of fetch would otherwise hold
// the process open for a while after the work is done.
const flushed = (s: NodeJS.WriteStream) => new Promise<void>((resolve) => s.write('', () => resolve()));
await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
process.exit(code);
