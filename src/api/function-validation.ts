// Semantic checks of Function, Pipeline and EventSource that their schemas cannot express: the
// source compiles, cron schedules and time zones parse, names are unique, limits agree.
import { Cron } from 'croner';
import type { FieldCause } from './errors.js';
import { compileFunctionSource } from './function-source.js';
import type { CronTrigger, EventTrigger, FunctionSpec, PipelineSpec } from './functions.js';
import type { Resource } from './meta.js';

export function validateFunction(obj: Resource): FieldCause[] {
  const spec = obj.spec as FunctionSpec;
  const causes: FieldCause[] = [];
  const compiled = compileFunctionSource(spec.source);
  if (!compiled.ok) causes.push(...compiled.causes);
  const l = spec.limits ?? {};
  if (l.targetInFlight !== undefined && l.targetInFlight > (l.concurrency ?? 10)) {
    causes.push({ field: 'spec.limits.targetInFlight', message: `must not exceed concurrency (${l.concurrency ?? 10})` });
  }
  if ((l.minInstances ?? 0) > (l.maxInstances ?? 10)) causes.push({ field: 'spec.limits.minInstances', message: `must not exceed maxInstances (${l.maxInstances ?? 10})` });
  const envNames = new Set(Object.keys(spec.env ?? {}));
  (spec.secretEnv ?? []).forEach((ref, i) => {
    if (envNames.has(ref.name)) causes.push({ field: `spec.secretEnv[${i}].name`, message: `${ref.name} is set twice (env and secretEnv)` });
    envNames.add(ref.name);
  });
  causes.push(...validateAsyncTriggers(spec.triggers ?? {}, 'spec.triggers'));
  return causes;
}

export function validatePipeline(obj: Resource): FieldCause[] {
  const spec = obj.spec as PipelineSpec;
  const causes: FieldCause[] = [];
  const names = new Set<string>();
  spec.steps.forEach((step, i) => {
    const at = `spec.steps[${i}]`;
    if ((step.function === undefined) === (step.parallel === undefined)) causes.push({ field: at, message: 'give exactly one of function or parallel' });
    if (names.has(step.name)) causes.push({ field: `${at}.name`, message: `duplicate step name ${JSON.stringify(step.name)}` });
    names.add(step.name);
    const branches = new Set<string>();
    (step.parallel ?? []).forEach((b, j) => {
      if (branches.has(b.name)) causes.push({ field: `${at}.parallel[${j}].name`, message: `duplicate branch name ${JSON.stringify(b.name)}` });
      branches.add(b.name);
    });
  });
  causes.push(...validateAsyncTriggers(spec.triggers ?? {}, 'spec.triggers'));
  return causes;
}

function validateAsyncTriggers(t: { cron?: CronTrigger[]; events?: EventTrigger[] }, field: string): FieldCause[] {
  const causes: FieldCause[] = [];
  const names = new Set<string>();
  const unique = (name: string, at: string) => {
    if (names.has(name)) causes.push({ field: `${at}.name`, message: `duplicate trigger name ${JSON.stringify(name)}` });
    names.add(name);
  };
  (t.cron ?? []).forEach((c, i) => {
    const at = `${field}.cron[${i}]`;
    unique(c.name, at);
    const problem = cronProblem(c.schedule);
    if (problem) causes.push({ field: `${at}.schedule`, message: problem });
    if (c.timeZone !== undefined && !isTimeZone(c.timeZone)) causes.push({ field: `${at}.timeZone`, message: `${JSON.stringify(c.timeZone)} is not an IANA time zone` });
  });
  (t.events ?? []).forEach((e, i) => unique(e.name, `${field}.events[${i}]`));
  return causes;
}

/** Five fields, or six with leading seconds; undefined when it parses. */
export function cronProblem(schedule: string): string | undefined {
  const fields = schedule.trim().split(/\s+/).length;
  if (fields !== 5 && fields !== 6) return `${JSON.stringify(schedule)} has ${fields} fields; need 5 (minute hour day-of-month month day-of-week) or 6 (seconds first)`;
  try {
    new Cron(schedule, { paused: true, mode: fields === 5 ? '5-part' : '6-part' });
    return undefined;
  } catch (err) {
    return `${JSON.stringify(schedule)} does not parse: ${(err as Error).message}`;
  }
}

export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}
