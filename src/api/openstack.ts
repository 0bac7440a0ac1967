// `OpenStackCloud`: an OpenStack project a Marina project runs clusters in (provider `openstack`).
// It names where Keystone is, the application credential (in a Secret of the same project) and
// the networks machines and API endpoints use. A Cluster picks one by name (spec.cloud).
import { CloneType, Type, type Static } from '@sinclair/typebox';
import { parseIPv4 } from './cidr.js';
import type { FieldCause } from './errors.js';
import { envelope } from './kinds.js';
import { Name, statusSchema, type Resource } from './meta.js';

/** A name or id of an OpenStack object (network, subnet, image, flavor). */
const OpenStackRef = (description: string) => Type.String({ minLength: 1, maxLength: 255, description });

export const OpenStackLoadBalancer = Type.Object(
  {
    network: Type.Optional(
      OpenStackRef("network of the API endpoint's VIP (name or id): an external or provider network when clients are outside the cloud; default: the machines' network"),
    ),
    subnet: Type.Optional(OpenStackRef("subnet of that network the VIP takes its address from (name or id); default: the network's first IPv4 subnet")),
  },
  { additionalProperties: false },
);

export const OpenStackCloudSpec = Type.Object(
  {
    authURL: Type.String({ minLength: 1, maxLength: 2048, description: 'Keystone v3 URL, e.g. https://keystone.example.com:5000/v3' }),
    region: Type.Optional(Type.String({ minLength: 1, maxLength: 255, description: "region of the catalog's endpoints (default: the first one listed)" })),
    interface: Type.Optional(Type.Union([Type.Literal('public'), Type.Literal('internal')], { description: 'which catalog endpoints Marina calls (default public)' })),
    credentialsSecret: CloneType(Name, {
      description: 'a Secret of the project with data applicationCredentialId and applicationCredentialSecret (a Keystone application credential of the OpenStack project)',
    }),
    network: OpenStackRef("Neutron network (name or id) every machine gets its port on; a pool's machine.network overrides it"),
    subnet: Type.Optional(OpenStackRef("IPv4 subnet of that network ports take their address from (name or id; default: the network's first IPv4 subnet)")),
    loadBalancer: Type.Optional(OpenStackLoadBalancer),
    managementCIDR: Type.Optional(
      Type.String({ maxLength: 43, description: "where Marina connects from: the cluster's security group admits etcd, the kubelet and the machine agent from here (default 0.0.0.0/0)" }),
    ),
    marinaURL: Type.Optional(
      Type.String({ maxLength: 2048, description: "https URL the machines reach Marina at to join (default: the server's own advertised URL)" }),
    ),
  },
  { additionalProperties: false },
);
export type OpenStackCloudSpec = Static<typeof OpenStackCloudSpec>;
export const OpenStackCloud = envelope('OpenStackCloud', OpenStackCloudSpec, statusSchema({}), 'An OpenStack project clusters of provider openstack run in');
export type OpenStackCloud = Static<typeof OpenStackCloud>;

/** Data keys of the credentials Secret. */
export const OPENSTACK_CREDENTIAL_ID = 'applicationCredentialId';
export const OPENSTACK_CREDENTIAL_SECRET = 'applicationCredentialSecret';

/** `a.b.c.d/n` with n 0..32 and no host bits (a security-group remote prefix). */
export function cidrProblem(s: string): string | undefined {
  const m = /^([0-9.]+)\/([0-9]{1,2})$/.exec(s);
  const ip = m ? parseIPv4(m[1]!) : undefined;
  if (!m || ip === undefined || Number(m[2]) > 32) return `${JSON.stringify(s)} is not an IPv4 CIDR like 10.0.0.0/8`;
  const size = 2 ** (32 - Number(m[2]));
  return ip % size === 0 ? undefined : `${s} has host bits set`;
}

function urlProblem(value: string, schemes: string[]): string | undefined {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    return `${JSON.stringify(value)} is not a URL`;
  }
  if (!schemes.includes(u.protocol)) return `must be a ${schemes.map((s) => `${s}//`).join(' or ')} URL, got ${JSON.stringify(value)}`;
  if (u.username || u.password) return 'must not carry credentials (they belong in the credentials Secret)';
  return undefined;
}

export function validateOpenStackCloud(obj: Resource): FieldCause[] {
  const spec = obj.spec as OpenStackCloudSpec;
  const causes: FieldCause[] = [];
  const auth = urlProblem(spec.authURL, ['https:', 'http:']);
  if (auth) causes.push({ field: 'spec.authURL', message: auth });
  if (spec.managementCIDR !== undefined) {
    const p = cidrProblem(spec.managementCIDR);
    if (p) causes.push({ field: 'spec.managementCIDR', message: p });
  }
  if (spec.marinaURL !== undefined) {
    const p = urlProblem(spec.marinaURL, ['https:']);
    if (p) causes.push({ field: 'spec.marinaURL', message: `${p} (the joining machine checks Marina's CA pin over TLS)` });
  }
  return causes;
}
