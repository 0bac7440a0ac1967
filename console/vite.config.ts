// Builds the web console into dist/console, served by the Marina server under /console/.
//   npm run build                                  (the root build runs this)
//   npx vite --config console/vite.config.ts       (dev server; proxies /api to MARINA_URL)
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

const here = fileURLToPath(new URL('.', import.meta.url));
const repo = fileURLToPath(new URL('..', import.meta.url));

export default defineConfig({
  root: here,
  base: '/console/',
  plugins: [react()],
  logLevel: 'warn',
  build: {
    outDir: `${repo}dist/console`,
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
    chunkSizeWarningLimit: 1024,
  },
  server: {
    fs: { allow: [repo] },
    proxy: { '/api': process.env.MARINA_URL ?? 'http://127.0.0.1:7443' },
  },
});
