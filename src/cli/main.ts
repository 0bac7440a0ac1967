// Entry point of the `marina` binary (bin/marina.js imports the compiled form of this file).
import { run } from './program.js';

// `marina get clusters | head -1` closes the pipe early; that is not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}

const code = await run(process.argv);
process.exitCode = code;
// Normally the event loop is empty now and Node exits; do not let a stray keep-alive socket hold it.
setTimeout(() => process.exit(code), 2000).unref();
