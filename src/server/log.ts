// The server's log: JSON lines for machines (the default when stdout is not a terminal), or
// readable lines for people — time, level, module, object key, message, then the other fields —
// rendered in-process by pino-pretty (a stream, not a worker: no thread, no line lost at exit).
import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';

export const LOG_FORMATS = ['json', 'text'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** `--log-format`, else MARINA_LOG_FORMAT, else text on a terminal and JSON otherwise. */
export function logFormatFrom(flag: string | undefined, env: NodeJS.ProcessEnv = process.env, isTTY = process.stdout.isTTY === true): LogFormat {
  const chosen = flag ?? (env.MARINA_LOG_FORMAT?.trim() || undefined);
  if (chosen === undefined) return isTTY ? 'text' : 'json';
  if (!(LOG_FORMATS as readonly string[]).includes(chosen)) {
    throw new Error(`log format must be one of ${LOG_FORMATS.join(', ')}, got ${JSON.stringify(chosen)}${flag === undefined ? ' (MARINA_LOG_FORMAT)' : ''}`);
  }
  return chosen as LogFormat;
}

/** Fields that make up the line's prefix; the rest follow the message. */
const PREFIX_FIELDS = ['module', 'controller', 'component', 'key'];

/** `[controllers/cluster Cluster/demo/web] message` */
function messageFormat(log: Record<string, unknown>, messageKey: string): string {
  const where = [log.module, log.controller ?? log.component].filter((v) => typeof v === 'string' && v !== '').join('/');
  const key = typeof log.key === 'string' ? `${where ? ' ' : ''}${log.key}` : '';
  const message = String(log[messageKey] ?? '');
  return where || key ? `[${where}${key}] ${message}` : message;
}

export interface LoggerOptions {
  level?: string;
  format: LogFormat;
  /** Where lines go (default stdout). */
  destination?: NodeJS.WritableStream;
  /** Colors in text lines (default: when stdout is a terminal). */
  colorize?: boolean;
}

export function createLogger(opts: LoggerOptions): Logger {
  const level = opts.level ?? process.env.MARINA_LOG_LEVEL ?? 'info';
  if (opts.format === 'json') return opts.destination ? pino({ level }, opts.destination) : pino({ level });
  const stream = pretty({
    destination: opts.destination ?? 1,
    sync: true,
    colorize: opts.colorize ?? process.stdout.isTTY === true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: ['pid', 'hostname', ...PREFIX_FIELDS].join(','),
    singleLine: true,
    messageFormat,
    customPrettifiers: { time: (t) => String(t) },
  });
  return pino({ level }, stream);
}
