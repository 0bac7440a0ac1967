// OpenStack's answers as ProviderErrors a user can act on: a stable reason, OpenStack's own message
// (what the cloud's operators and documentation speak of), and whether retrying can help.
//
//   reason               terminal  from
//   QuotaExceeded        no        Nova 403 "Quota exceeded for cores: …", Neutron 409 OverQuota,
//                                  Octavia 403 "Quota has been met …" — frees up or is raised
//   ImageNotFound        yes       Nova 400 "Can not find requested image", a name Glance does not know
//   FlavorNotFound       yes       Nova 400 "Flavor … could not be found.", a name not among the flavors
//   NetworkNotFound      yes       Nova/Neutron "Network … could not be found", a name Neutron does not know
//   InvalidRequest       yes       any other 400: the request (the pool's spec) is wrong
//   AuthenticationFailed no        Keystone refused the application credential (fix the Secret)
//   Forbidden            no        a 403 that is not a quota: the credential lacks a role
//   OpenStackUnreachable no        no answer from a service
//   OpenStackError       no        anything else (5xx, 409 while busy, …)
import { ProviderError } from '../contract.js';
import { OpenStackError, OpenStackUnreachable } from './session.js';

const SERVICE_NAMES: Record<string, string> = {
  compute: 'compute (Nova)',
  network: 'network (Neutron)',
  image: 'image (Glance)',
  'load-balancer': 'load-balancer (Octavia)',
  identity: 'identity (Keystone)',
};

/** A ProviderError for `err`, or `err` itself when it is neither an OpenStack nor a provider error. */
export function providerError(err: unknown, doing: string): unknown {
  if (err instanceof ProviderError) return err;
  if (err instanceof OpenStackUnreachable) return new ProviderError('OpenStackUnreachable', `${doing}: ${err.message}`);
  if (!(err instanceof OpenStackError)) return err;
  const { reason, terminal } = classify(err);
  return new ProviderError(reason, `${doing}: OpenStack ${SERVICE_NAMES[err.service] ?? err.service} answered ${err.status}: ${err.detail}`, terminal);
}

function classify(err: OpenStackError): { reason: string; terminal: boolean } {
  const d = err.detail;
  if (/quota (exceeded|has been met)/i.test(d) || err.type === 'OverQuota') return { reason: 'QuotaExceeded', terminal: false };
  if (err.service === 'identity') return { reason: 'AuthenticationFailed', terminal: false };
  if (err.status === 401) return { reason: 'AuthenticationFailed', terminal: false };
  if (/image/i.test(d) && /(can ?not find|could not be found|not found)/i.test(d)) return { reason: 'ImageNotFound', terminal: true };
  if (/flavor/i.test(d) && /(could not be found|not found)/i.test(d)) return { reason: 'FlavorNotFound', terminal: true };
  if (/network/i.test(d) && /(could not be found|not found)/i.test(d) && (err.status === 400 || err.status === 404)) return { reason: 'NetworkNotFound', terminal: true };
  if (err.status === 403) return { reason: 'Forbidden', terminal: false };
  if (err.status === 400) return { reason: 'InvalidRequest', terminal: true };
  return { reason: 'OpenStackError', terminal: false };
}

/** Runs `fn`, turning what OpenStack answered into a ProviderError that says what Marina was doing. */
export async function doing<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw providerError(err, what);
  }
}
