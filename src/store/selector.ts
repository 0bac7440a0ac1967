// Kubernetes label selectors (k8s.io/apimachinery/pkg/labels): equality-based `a=b`, `a==b`,
// `a!=b`, `a`, `!a` and set-based `a in (x,y)`, `a notin (x)`, joined by commas (AND).
import { ApiError } from '../api/errors.js';

export type Operator = 'exists' | 'notexists' | 'eq' | 'neq' | 'in' | 'notin';

export interface Requirement {
  key: string;
  op: Operator;
  /** eq/neq: one value; in/notin: one or more. */
  values: string[];
}

/** A parsed selector; an empty selector matches everything. */
export interface LabelSelector {
  requirements: Requirement[];
  matches(labels: Record<string, string> | undefined): boolean;
}

const NAME_RE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$/;
const DNS_SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const IDENT_CHAR = /[A-Za-z0-9_./-]/;

function fail(selector: string, message: string): never {
  throw ApiError.badRequest(`invalid label selector ${JSON.stringify(selector)}: ${message}`, 'labelSelector');
}

function checkKey(selector: string, key: string): void {
  const slash = key.indexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && (prefix.length === 0 || prefix.length > 253 || !DNS_SUBDOMAIN_RE.test(prefix))) {
    fail(selector, `key ${JSON.stringify(key)}: prefix must be a DNS subdomain`);
  }
  if (name.length === 0 || name.length > 63 || !NAME_RE.test(name)) {
    fail(selector, `key ${JSON.stringify(key)}: name must be 1-63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric`);
  }
}

function checkValue(selector: string, value: string): void {
  if (value.length > 63 || (value.length > 0 && !NAME_RE.test(value))) {
    fail(selector, `value ${JSON.stringify(value)}: must be at most 63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric`);
  }
}

/** Parses a selector; throws a 400 ApiError (field `labelSelector`) when malformed. */
export function parseLabelSelector(selector: string | undefined): LabelSelector {
  const requirements: Requirement[] = [];
  const s = selector ?? '';
  let i = 0;
  const skipWs = () => {
    while (i < s.length && /\s/.test(s[i]!)) i++;
  };
  const ident = (): string => {
    const start = i;
    while (i < s.length && IDENT_CHAR.test(s[i]!)) i++;
    return s.slice(start, i);
  };

  skipWs();
  if (i < s.length) {
    for (;;) {
      skipWs();
      if (s[i] === '!') {
        i++;
        skipWs();
        const key = ident();
        if (!key) fail(s, `expected a label key after '!' at offset ${i}`);
        checkKey(s, key);
        requirements.push({ key, op: 'notexists', values: [] });
      } else {
        const key = ident();
        if (!key) fail(s, `expected a label key at offset ${i}`);
        checkKey(s, key);
        skipWs();
        if (i >= s.length || s[i] === ',') {
          requirements.push({ key, op: 'exists', values: [] });
        } else if (s[i] === '=' || s[i] === '!') {
          let op: Operator;
          if (s.startsWith('==', i)) (op = 'eq'), (i += 2);
          else if (s.startsWith('!=', i)) (op = 'neq'), (i += 2);
          else if (s[i] === '=') (op = 'eq'), (i += 1);
          else fail(s, `unexpected '!' at offset ${i}`);
          skipWs();
          const value = ident();
          checkValue(s, value);
          requirements.push({ key, op, values: [value] });
        } else {
          const word = ident();
          if (word !== 'in' && word !== 'notin') fail(s, `expected an operator (=, ==, !=, in, notin) after ${JSON.stringify(key)}`);
          skipWs();
          if (s[i] !== '(') fail(s, `expected '(' after ${word}`);
          i++;
          const values: string[] = [];
          for (;;) {
            skipWs();
            const value = ident();
            checkValue(s, value);
            values.push(value);
            skipWs();
            if (s[i] === ',') {
              i++;
              continue;
            }
            if (s[i] === ')') {
              i++;
              break;
            }
            fail(s, `expected ',' or ')' in the value set of ${JSON.stringify(key)}`);
          }
          if (values.length === 1 && values[0] === '') fail(s, `the value set of ${JSON.stringify(key)} must not be empty`);
          requirements.push({ key, op: word, values });
        }
      }
      skipWs();
      if (i >= s.length) break;
      if (s[i] !== ',') fail(s, `expected ',' at offset ${i}`);
      i++;
    }
  }

  const compiled = requirements.map((r) => ({ ...r, set: new Set(r.values) }));
  return {
    requirements,
    matches(labels) {
      for (const r of compiled) {
        const has = labels !== undefined && Object.prototype.hasOwnProperty.call(labels, r.key);
        const v = has ? labels![r.key] : undefined;
        switch (r.op) {
          case 'exists':
            if (!has) return false;
            break;
          case 'notexists':
            if (has) return false;
            break;
          case 'eq':
            if (!has || v !== r.values[0]) return false;
            break;
          case 'neq':
            if (has && v === r.values[0]) return false;
            break;
          case 'in':
            if (!has || !r.set.has(v!)) return false;
            break;
          case 'notin':
            if (has && r.set.has(v!)) return false;
            break;
        }
      }
      return true;
    },
  };
}
