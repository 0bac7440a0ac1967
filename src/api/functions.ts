// The function service's kinds (Function, Pipeline, EventSource) and the records its API returns
// (activations, dead letters, pipeline runs, CloudEvents). One TypeBox source for validation at the
// edge, the OpenAPI document and the TypeScript types.
import { Type, type Static } from '@sinclair/typebox';
import { envelope } from './kinds.js';
import { Name, statusSchema } from './meta.js';

export const FUNCTION_DEFAULTS = {
  timeoutSeconds: 30,
  memoryMiB: 128,
  concurrency: 10,
  minInstances: 0,
  maxInstances: 10,
  idleSeconds: 60,
} as const;
export const RETRY_DEFAULTS = { maxAttempts: 3, backoffSeconds: 1, maxBackoffSeconds: 300, multiplier: 2 } as const;
export const PIPELINE_DEFAULT_DEADLINE_SECONDS = 300;
/** Compiled bundle limit: what one instance loads over its pipe. */
export const MAX_SOURCE_BYTES = 1024 * 1024;

const EnvName = Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$', maxLength: 128 });

export const RetryPolicy = Type.Object(
  {
    maxAttempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 20, description: 'attempts in all, the first included (default 3)' })),
    backoffSeconds: Type.Optional(Type.Number({ minimum: 0, maximum: 3600, description: 'wait before the second attempt (default 1)' })),
    multiplier: Type.Optional(Type.Number({ minimum: 1, maximum: 10, description: 'each further wait is this many times the previous (default 2)' })),
    maxBackoffSeconds: Type.Optional(Type.Number({ minimum: 0, maximum: 86400, description: 'upper bound of one wait (default 300)' })),
  },
  { additionalProperties: false, description: 'exponential backoff with ±20 % jitter; after the last attempt the delivery goes to the dead-letter list' },
);
export type RetryPolicy = Static<typeof RetryPolicy>;

export const FunctionSource = Type.Object(
  {
    language: Type.Optional(Type.Union([Type.Literal('javascript'), Type.Literal('typescript')], { description: 'default javascript' })),
    code: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_SOURCE_BYTES, description: 'one ES module; its default export is the handler' })),
    files: Type.Optional(
      Type.Record(Type.String({ pattern: '^[A-Za-z0-9_@.-][A-Za-z0-9_@./-]*$', maxLength: 512 }), Type.String({ maxLength: MAX_SOURCE_BYTES }), {
        maxProperties: 500,
        description: 'a bundle: relative path → file text (node_modules included); bundled by Marina at deploy time',
      }),
    ),
    entry: Type.Optional(Type.String({ minLength: 1, maxLength: 512, description: 'the bundle file whose default export is the handler' })),
  },
  { additionalProperties: false, description: 'exactly one of code, or files with entry' },
);
export type FunctionSource = Static<typeof FunctionSource>;

export const FunctionLimits = Type.Object(
  {
    timeoutSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 900, description: 'deadline of one invocation; the instance is killed at it (default 30)' })),
    memoryMiB: Type.Optional(Type.Integer({ minimum: 64, maximum: 4096, description: 'memory of one instance, enforced by the kernel (default 128)' })),
    concurrency: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'invocations one instance runs at once, at most (default 10)' })),
    targetInFlight: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 1000, description: 'in-flight invocations per instance above which a new instance is started (default 70 % of concurrency)' }),
    ),
    minInstances: Type.Optional(Type.Integer({ minimum: 0, maximum: 50, description: 'instances kept warm; 0 scales to zero (default 0)' })),
    maxInstances: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: 'default 10' })),
    idleSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 86400, description: 'an instance idle this long is stopped (default 60)' })),
  },
  { additionalProperties: false },
);
export type FunctionLimits = Static<typeof FunctionLimits>;

export const SecretEnvRef = Type.Object(
  { name: EnvName, secret: Name, key: Type.String({ minLength: 1, maxLength: 253 }) },
  { additionalProperties: false, description: 'environment variable `name` set from key `key` of the project Secret `secret`' },
);

export const HttpTrigger = Type.Object(
  {
    enabled: Type.Optional(Type.Boolean({ description: 'serve /fn/<project>/<name> (default true)' })),
    public: Type.Optional(Type.Boolean({ description: 'no token needed (default false: a token of a project member)' })),
  },
  { additionalProperties: false },
);

export const ConcurrencyPolicy = Type.Union([Type.Literal('Allow'), Type.Literal('Forbid'), Type.Literal('Replace')], {
  description: 'when a run is due while the previous one is queued or running: Allow both, Forbid (skip the new one), Replace (cancel the old one)',
});
export type ConcurrencyPolicy = Static<typeof ConcurrencyPolicy>;
export const MissedRunPolicy = Type.Union([Type.Literal('Skip'), Type.Literal('RunOnce'), Type.Literal('RunAll')], {
  description: 'runs missed while Marina was down (older than startingDeadlineSeconds): Skip them, RunOnce (the latest), RunAll (at most 100)',
});
export type MissedRunPolicy = Static<typeof MissedRunPolicy>;

export const CronTrigger = Type.Object(
  {
    name: Name,
    schedule: Type.String({
      minLength: 9,
      maxLength: 256,
      description: 'five fields (minute hour day-of-month month day-of-week); a sixth leading field of seconds is accepted',
    }),
    timeZone: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'IANA time zone (default UTC)' })),
    concurrencyPolicy: Type.Optional(ConcurrencyPolicy),
    missedRunPolicy: Type.Optional(MissedRunPolicy),
    startingDeadlineSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 86400, description: 'a run later than this counts as missed (default 60)' })),
    data: Type.Optional(Type.Unknown({ description: 'the event data each run receives' })),
    retry: Type.Optional(RetryPolicy),
  },
  { additionalProperties: false },
);
export type CronTrigger = Static<typeof CronTrigger>;

export const EventFilter = Type.Object(
  {
    types: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 256 }), { minItems: 1, maxItems: 32, description: 'CloudEvents types; a trailing * matches a prefix' }),
    ),
    source: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, description: 'source prefix' })),
    subject: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, description: 'exact subject; a trailing * matches a prefix' })),
    extensions: Type.Optional(
      Type.Record(Type.String({ pattern: '^[a-z0-9]{1,20}$' }), Type.String({ maxLength: 1024 }), { maxProperties: 16, description: 'exact values of extension attributes' }),
    ),
  },
  { additionalProperties: false },
);
export type EventFilter = Static<typeof EventFilter>;

export const EventTrigger = Type.Object(
  { name: Name, filter: EventFilter, retry: Type.Optional(RetryPolicy) },
  { additionalProperties: false, description: "a subscription to the project's platform events and ingested external events" },
);
export type EventTrigger = Static<typeof EventTrigger>;

const asyncTriggers = {
  cron: Type.Optional(Type.Array(CronTrigger, { maxItems: 16 })),
  events: Type.Optional(Type.Array(EventTrigger, { maxItems: 16 })),
};

export const FunctionTriggers = Type.Object(
  {
    http: Type.Optional(HttpTrigger),
    ...asyncTriggers,
    /** Retry policy of asynchronous HTTP and API invocations. */
    asyncRetry: Type.Optional(RetryPolicy),
  },
  { additionalProperties: false },
);

export const FunctionSpec = Type.Object(
  {
    runtime: Type.Optional(Type.Literal('nodejs20', { description: 'the Node.js of the Marina host' })),
    source: FunctionSource,
    env: Type.Optional(Type.Record(EnvName, Type.String({ maxLength: 32768 }), { maxProperties: 128 })),
    secretEnv: Type.Optional(Type.Array(SecretEnvRef, { maxItems: 64 })),
    limits: Type.Optional(FunctionLimits),
    network: Type.Optional(Type.Boolean({ description: 'reach the network from the sandbox (default false: loopback of its own only)' })),
    triggers: Type.Optional(FunctionTriggers),
  },
  { additionalProperties: false },
);
export type FunctionSpec = Static<typeof FunctionSpec>;

export const FunctionStatus = statusSchema({
  /** The revision new invocations run: the generation whose source compiled. */
  revision: Type.Optional(Type.Integer({ minimum: 1 })),
  url: Type.Optional(Type.String()),
});
export const Function = envelope(
  'Function',
  FunctionSpec,
  FunctionStatus,
  'Code run in a sandbox on HTTP requests, cron schedules and events; scales to zero (spec encrypted at rest)',
);
export type Function = Static<typeof Function>;

// ---------- Pipeline ----------

export const PipelineBranch = Type.Object({ name: Name, function: Name, retry: Type.Optional(RetryPolicy) }, { additionalProperties: false });
export const PipelineStep = Type.Object(
  {
    name: Name,
    function: Type.Optional(Name),
    parallel: Type.Optional(Type.Array(PipelineBranch, { minItems: 2, maxItems: 16, description: 'branches run at once; the next step gets {branchName: output}' })),
    retry: Type.Optional(RetryPolicy),
  },
  { additionalProperties: false, description: 'exactly one of function or parallel' },
);
export type PipelineStep = Static<typeof PipelineStep>;
export const PipelineSpec = Type.Object(
  {
    steps: Type.Array(PipelineStep, { minItems: 1, maxItems: 32, description: "each step's output is the next step's input" }),
    deadlineSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 86400, description: 'for the whole run (default 300)' })),
    triggers: Type.Optional(Type.Object(asyncTriggers, { additionalProperties: false })),
  },
  { additionalProperties: false },
);
export type PipelineSpec = Static<typeof PipelineSpec>;
export const Pipeline = envelope('Pipeline', PipelineSpec, statusSchema({}), 'Functions run one after another (with parallel branches), traced step by step');
export type Pipeline = Static<typeof Pipeline>;

// ---------- EventSource (external events signed with HMAC) ----------

export const EventSourceSpec = Type.Object(
  {
    description: Type.Optional(Type.String({ maxLength: 1024 })),
    hmacSecret: Type.Object(
      { name: Name, key: Type.String({ minLength: 1, maxLength: 253 }) },
      { additionalProperties: false, description: 'the project Secret key holding the shared HMAC-SHA256 key' },
    ),
  },
  { additionalProperties: false },
);
export const EventSource = envelope(
  'EventSource',
  EventSourceSpec,
  statusSchema({}),
  'A third-party sender of CloudEvents to POST /events/<project>/<name>, signed with X-Marina-Signature: sha256=<hex HMAC of the body>',
);
export type EventSource = Static<typeof EventSource>;

// ---------- records ----------

/** CloudEvents 1.0, structured mode (JSON). Extension attributes: lower-case alphanumerics. */
export const CloudEvent = Type.Object(
  {
    specversion: Type.Literal('1.0'),
    id: Type.String({ minLength: 1, maxLength: 512 }),
    source: Type.String({ minLength: 1, maxLength: 1024 }),
    type: Type.String({ minLength: 1, maxLength: 256 }),
    time: Type.Optional(Type.String({ format: 'date-time', maxLength: 64 })),
    subject: Type.Optional(Type.String({ maxLength: 1024 })),
    datacontenttype: Type.Optional(Type.String({ maxLength: 256 })),
    dataschema: Type.Optional(Type.String({ maxLength: 1024 })),
    data: Type.Optional(Type.Unknown()),
    data_base64: Type.Optional(Type.String()),
  },
  { additionalProperties: Type.Union([Type.String({ maxLength: 1024 }), Type.Number(), Type.Boolean()]), $id: 'CloudEvent' },
);
export type CloudEvent = Static<typeof CloudEvent> & Record<string, unknown>;

export const TriggerRef = Type.Object(
  {
    type: Type.Union([Type.Literal('http'), Type.Literal('api'), Type.Literal('cron'), Type.Literal('event'), Type.Literal('pipeline'), Type.Literal('replay')]),
    name: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);
export type TriggerRef = Static<typeof TriggerRef>;

export const ActivationOutcome = Type.Union(
  [Type.Literal('success'), Type.Literal('error'), Type.Literal('timeout'), Type.Literal('oom'), Type.Literal('crashed'), Type.Literal('canceled')],
  { description: 'error: the handler threw; timeout: killed at the deadline; oom: killed at the memory limit; crashed: the instance died otherwise' },
);
export type ActivationOutcome = Static<typeof ActivationOutcome>;

export const Activation = Type.Object(
  {
    id: Type.String(),
    project: Type.String(),
    function: Type.String(),
    revision: Type.Integer(),
    trigger: TriggerRef,
    deliveryId: Type.Optional(Type.String()),
    attempt: Type.Integer({ minimum: 1 }),
    idempotencyKey: Type.Optional(Type.String()),
    pipelineRun: Type.Optional(Type.String()),
    step: Type.Optional(Type.String()),
    start: Type.String(),
    end: Type.String(),
    durationMs: Type.Number(),
    coldStart: Type.Boolean(),
    coldStartMs: Type.Optional(Type.Number()),
    outcome: ActivationOutcome,
    result: Type.Optional(Type.Unknown()),
    error: Type.Optional(Type.String()),
    logs: Type.Optional(Type.Array(Type.String(), { description: 'the first lines the invocation logged (bounded)' })),
    logsTruncated: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false, $id: 'Activation' },
);
export type Activation = Static<typeof Activation>;

export const DeliveryState = Type.Union([Type.Literal('queued'), Type.Literal('running'), Type.Literal('dead')]);
export const Delivery = Type.Object(
  {
    id: Type.String(),
    project: Type.String(),
    target: Type.Object({ kind: Type.Union([Type.Literal('Function'), Type.Literal('Pipeline')]), name: Type.String() }, { additionalProperties: false }),
    trigger: TriggerRef,
    idempotencyKey: Type.String(),
    state: DeliveryState,
    attempts: Type.Integer({ minimum: 0 }),
    maxAttempts: Type.Integer({ minimum: 1 }),
    createdAt: Type.String(),
    notBefore: Type.String(),
    lastError: Type.Optional(Type.String()),
    event: Type.Optional(Type.Unknown()),
    pipelineRun: Type.Optional(Type.String()),
  },
  { additionalProperties: false, $id: 'Delivery', description: 'an asynchronous invocation; state dead: in the dead-letter list' },
);
export type Delivery = Static<typeof Delivery>;

export const StepRun = Type.Object(
  {
    step: Type.String(),
    branch: Type.Optional(Type.String()),
    function: Type.String(),
    outcome: Type.Union([Type.Literal('success'), Type.Literal('failed')]),
    attempts: Type.Integer(),
    activations: Type.Array(Type.String()),
    durationMs: Type.Number(),
    output: Type.Optional(Type.Unknown({ description: 'kept so that a run resumed after a restart continues from here' })),
    error: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);
export type StepRun = Static<typeof StepRun>;
export const PipelineRun = Type.Object(
  {
    id: Type.String(),
    project: Type.String(),
    pipeline: Type.String(),
    deliveryId: Type.String(),
    state: Type.Union([Type.Literal('running'), Type.Literal('succeeded'), Type.Literal('failed')]),
    start: Type.String(),
    end: Type.Optional(Type.String()),
    deadline: Type.String(),
    input: Type.Optional(Type.Unknown()),
    output: Type.Optional(Type.Unknown()),
    error: Type.Optional(Type.String()),
    steps: Type.Array(StepRun),
  },
  { additionalProperties: false, $id: 'PipelineRun' },
);
export type PipelineRun = Static<typeof PipelineRun>;
