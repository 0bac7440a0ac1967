// The function service's HTTP surface as TypeBox schemas: parameters, the answers that are not
// objects of a kind (invocations, activations, deliveries, pipeline runs) and the CloudEvents
// ingestion headers. The records themselves are defined once in src/api/functions.ts.
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Activation, CloudEvent, Delivery, PipelineRun } from '../api/functions.js';
import { ProjectNameParams, ProjectParams } from './schemas.js';

const RECORD_LIMIT_MAX = 1000;
export const RECORD_LIMIT_DEFAULT = 50;

export const RecordsQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: RECORD_LIMIT_MAX, description: `newest first; default ${RECORD_LIMIT_DEFAULT}` })),
});
export type RecordsQuery = Static<typeof RecordsQuery>;

export const InvokeQuery = Type.Object({
  async: Type.Optional(Type.Boolean({ description: 'queue the call (202 with the Delivery) instead of waiting for the result' })),
});
export type InvokeQuery = Static<typeof InvokeQuery>;

/**
 * Query of the HTTP trigger: whatever the caller sends reaches the function (a repeated parameter
 * as a list), except `async`, which Marina reads.
 */
export const HttpTriggerQuery = Type.Object(
  { async: InvokeQuery.properties.async },
  { description: 'any other parameter reaches the function in event.query (a repeated one as a list)' },
);
export type HttpTriggerQuery = Static<typeof HttpTriggerQuery> & Record<string, string | string[]>;

export const ProjectIdParams = Type.Object({ project: ProjectParams.properties.project, id: Type.String({ description: 'the record id' }) });
export const PipelineRunParams = Type.Object({ ...ProjectNameParams.properties, id: Type.String({ description: 'the run id' }) });
/** The HTTP trigger with a sub-path: `/fn/{project}/{name}/{path}` (Fastify's wildcard `*`). */
export const HttpTriggerPathParams = Type.Object({
  ...ProjectNameParams.properties,
  '*': Type.String({ description: 'the rest of the path, handed to the function as event.path' }),
});
export const EventSourceParams = Type.Object({ project: ProjectParams.properties.project, source: Type.String({ description: 'the EventSource' }) });

export const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({ minLength: 1, maxLength: 256, description: 'asynchronous calls only: repeated calls with the same key are one delivery (kept 24 h)' }),
  ),
});

export const SIGNATURE_HEADER = 'x-marina-signature';
const SIGNATURE_PATTERN = '^sha256=[0-9a-fA-F]{64}$';

/** CloudEvents HTTP binding, binary mode: the attributes travel as ce-* headers, the body is `data`. */
const ceHeaders = {
  'ce-specversion': Type.Optional(Type.String({ description: 'binary mode: 1.0 (its presence selects binary mode)' })),
  'ce-id': Type.Optional(Type.String({ description: 'binary mode: the event id' })),
  'ce-source': Type.Optional(Type.String({ description: 'binary mode: the event source' })),
  'ce-type': Type.Optional(Type.String({ description: 'binary mode: the event type (not under dev.marina.)' })),
  'ce-subject': Type.Optional(Type.String({ description: 'binary mode: the subject' })),
  'ce-time': Type.Optional(Type.String({ description: 'binary mode: RFC 3339 time' })),
};
export const CloudEventHeaders = Type.Object(ceHeaders);
export const SignedCloudEventHeaders = Type.Object({
  [SIGNATURE_HEADER]: Type.String({ pattern: SIGNATURE_PATTERN, description: "sha256=<hex HMAC-SHA256 of the raw body with the EventSource's key>" }),
  ...ceHeaders,
});

/** The request body of an ingested CloudEvent: structured mode (the event) or binary mode (its data). */
export const CloudEventBody = {
  description: 'structured mode: the CloudEvent as application/cloudevents+json; binary mode: the ce-* headers carry the attributes and the body is the data, of any content type',
  required: true,
  content: {
    'application/cloudevents+json': { schema: Type.Ref(CloudEvent.$id!) },
    '*/*': { schema: Type.Unknown({ description: 'binary mode: the data' }) },
  },
};

/** A JSON (or YAML) request body that is any value: the event a function or pipeline receives. */
export const EventBody = {
  description: 'the event the function (or the first step) receives: any JSON value; none is null',
  content: { 'application/json': { schema: Type.Unknown() }, 'application/yaml': { schema: Type.Unknown() } },
};

export const Invocation = Type.Object(
  {
    kind: Type.Literal('Invocation'),
    activation: Type.Ref(Activation.$id!),
    result: Type.Unknown({ description: "the handler's result (null when it failed; see activation.outcome)" }),
  },
  { $id: 'Invocation', description: 'a synchronous invocation: its activation record and the full result' },
);

export const ActivationList = Type.Object({ kind: Type.Literal('ActivationList'), items: Type.Array(Type.Ref(Activation.$id!)) }, { $id: 'ActivationList' });
export const DeliveryList = Type.Object({ kind: Type.Literal('DeliveryList'), items: Type.Array(Type.Ref(Delivery.$id!)) }, { $id: 'DeliveryList' });
export const PipelineRunList = Type.Object({ kind: Type.Literal('PipelineRunList'), items: Type.Array(Type.Ref(PipelineRun.$id!)) }, { $id: 'PipelineRunList' });
export const PipelineRunTrace = Type.Object(
  { ...PipelineRun.properties, activations: Type.Array(Type.Ref(Activation.$id!), { description: 'every step attempt, oldest first' }) },
  { additionalProperties: false, $id: 'PipelineRunTrace', description: 'a pipeline run with the activation of every step attempt' },
);

export const FunctionInstanceList = Type.Object(
  {
    kind: Type.Literal('FunctionInstanceList'),
    items: Type.Array(
      Type.Object(
        {
          id: Type.String(),
          revision: Type.Integer({ minimum: 1 }),
          state: Type.Union([Type.Literal('starting'), Type.Literal('ready'), Type.Literal('draining')], {
            description: 'starting: loading the module; ready: takes calls; draining: finishing the calls of an old revision',
          }),
          inFlight: Type.Integer({ minimum: 0, description: 'calls running on it now' }),
          idleSeconds: Type.Integer({ minimum: 0, description: 'since its last call ended (0 while busy)' }),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { $id: 'FunctionInstanceList', description: 'the sandbox instances of a function in the Marina process that answers (each process runs its own)' },
);

/** Named components of the OpenAPI document. */
export const FUNCTION_COMPONENTS: TSchema[] = [
  CloudEvent,
  Activation,
  Delivery,
  PipelineRun,
  Invocation,
  ActivationList,
  DeliveryList,
  PipelineRunList,
  PipelineRunTrace,
  FunctionInstanceList,
];
