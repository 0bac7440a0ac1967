#!/usr/bin/env node
// Creates the objects a test control plane needs, through the real OpenStack APIs (called by
// up.sh, plain fetch, no dependencies):
//
//   fixtures.mjs services KEYSTONE_V3 ADMIN_PASSWORD SERVICE_PASSWORD ENDPOINTS_JSON
//     Keystone only (runs once per database template): the service project and user every
//     service authenticates with, the catalog, and the "marina" project with its user and
//     application credential; prints the latter as JSON on stdout
//   fixtures.mjs tenant KEYSTONE_V3 ADMIN_PASSWORD COMPUTES
//     every start: flavors, a public image, the marina network and subnet, quotas; then waits
//     for the compute hosts and agents; prints them as JSON on stdout
import { randomBytes } from 'node:crypto';

const [mode, keystone, adminPassword, ...rest] = process.argv.slice(2);
const REGION = 'RegionOne';
const t0 = Date.now();
const progress = (msg) => console.error(`[fixtures +${Math.round((Date.now() - t0) / 1000)}s] ${msg}`);

async function call(method, url, { token, body, raw, headers = {}, ok = [200, 201, 202, 204] } = {}) {
  const init = { method, headers: { ...headers } };
  if (token) init.headers['X-Auth-Token'] = token;
  if (raw !== undefined) {
    init.body = raw;
  } else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] ??= 'application/json';
  }
  const res = await fetch(url, init);
  const text = await res.text();
  if (!ok.includes(res.status)) throw new Error(`${method} ${url} -> ${res.status}: ${text.slice(0, 500)}`);
  return { status: res.status, headers: res.headers, json: text ? JSON.parse(text) : undefined };
}

async function passwordToken(username, password, project) {
  const res = await call('POST', `${keystone}/auth/tokens`, {
    body: {
      auth: {
        identity: { methods: ['password'], password: { user: { name: username, domain: { id: 'default' }, password } } },
        scope: { project: { name: project, domain: { id: 'default' } } },
      },
    },
  });
  return { token: res.headers.get('x-subject-token'), body: res.json.token };
}

async function findOrCreate(listUrl, key, name, createBody, token) {
  const list = await call('GET', `${listUrl}?name=${encodeURIComponent(name)}`, { token });
  const found = list.json[`${key}s`].find((x) => x.name === name);
  if (found) return found;
  return (await call('POST', listUrl, { token, body: { [key]: createBody } })).json[key];
}

async function grant(projectId, userId, roleName, token) {
  const role = await findOrCreate(`${keystone}/roles`, 'role', roleName, { name: roleName }, token);
  await call('PUT', `${keystone}/projects/${projectId}/users/${userId}/roles/${role.id}`, { token });
}

async function poll(what, timeoutMs, fn) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function services(servicePassword, endpointsJson) {
  const endpoints = JSON.parse(endpointsJson);
  const { token } = await passwordToken('admin', adminPassword, 'admin');
  const serviceProject = await findOrCreate(`${keystone}/projects`, 'project', 'service', { name: 'service', domain_id: 'default' }, token);
  let serviceUser = (await call('GET', `${keystone}/users?name=marina-service`, { token })).json.users[0];
  if (serviceUser) {
    await call('PATCH', `${keystone}/users/${serviceUser.id}`, { token, body: { user: { password: servicePassword } } });
  } else {
    serviceUser = (await call('POST', `${keystone}/users`, {
      token, body: { user: { name: 'marina-service', domain_id: 'default', password: servicePassword, default_project_id: serviceProject.id } },
    })).json.user;
  }
  for (const role of ['admin', 'service']) await grant(serviceProject.id, serviceUser.id, role, token);

  const catalog = [
    ['identity', 'keystone', endpoints.keystone],
    ['placement', 'placement', endpoints.placement],
    ['compute', 'nova', endpoints.nova],
    ['network', 'neutron', endpoints.neutron],
    ['image', 'glance', endpoints.glance],
    ['load-balancer', 'octavia', endpoints.octavia],
  ];
  const existing = (await call('GET', `${keystone}/endpoints`, { token })).json.endpoints;
  for (const [type, name, url] of catalog) {
    const services = (await call('GET', `${keystone}/services?type=${type}`, { token })).json.services;
    const service = services[0] ?? (await call('POST', `${keystone}/services`, { token, body: { service: { type, name } } })).json.service;
    for (const ep of existing.filter((e) => e.service_id === service.id)) {
      await call('DELETE', `${keystone}/endpoints/${ep.id}`, { token });
    }
    for (const iface of ['public', 'internal', 'admin']) {
      await call('POST', `${keystone}/endpoints`, {
        token, body: { endpoint: { service_id: service.id, interface: iface, url, region_id: REGION } },
      });
    }
  }
  // The marina project and user, with the roles Nova/Neutron/Glance (member) and Octavia
  // (load-balancer_member) check for.
  const project = await findOrCreate(`${keystone}/projects`, 'project', 'marina', { name: 'marina', domain_id: 'default' }, token);
  const password = randomBytes(16).toString('hex');
  let user = (await call('GET', `${keystone}/users?name=marina`, { token })).json.users[0];
  if (user) {
    await call('PATCH', `${keystone}/users/${user.id}`, { token, body: { user: { password } } });
  } else {
    user = (await call('POST', `${keystone}/users`, {
      token, body: { user: { name: 'marina', domain_id: 'default', password, default_project_id: project.id } },
    })).json.user;
  }
  for (const role of ['member', 'reader', 'load-balancer_member']) await grant(project.id, user.id, role, token);
  const userToken = (await passwordToken('marina', password, 'marina')).token;
  const appCredName = `marina-${Date.now()}`;
  const appCred = (await call('POST', `${keystone}/users/${user.id}/application_credentials`, {
    token: userToken, body: { application_credential: { name: appCredName, description: 'Marina test control plane' } },
  })).json.application_credential;

  return {
    project: { id: project.id, name: project.name, domain: 'Default' },
    user: { id: user.id, name: 'marina', password },
    applicationCredential: { id: appCred.id, name: appCredName, secret: appCred.secret },
  };
}

async function tenant(computes) {
  const admin = await passwordToken('admin', adminPassword, 'admin');
  const token = admin.token;
  const url = (type) => admin.body.catalog.find((s) => s.type === type).endpoints.find((e) => e.interface === 'public').url;
  const nova = url('compute');
  const neutron = url('network');
  const glance = url('image');
  const octavia = url('load-balancer');
  const novaHeaders = { 'OpenStack-API-Version': 'compute 2.88' };
  const project = (await call('GET', `${keystone}/projects?name=marina`, { token })).json.projects[0];
  if (!project) throw new Error('project marina missing (made by the services step)');

  const quotas = {
    compute: { instances: 20, cores: 64, ram: 131072, server_groups: 10, server_group_members: 10 },
    network: { network: 10, subnet: 10, port: 100, security_group: 20, security_group_rule: 200 },
    loadBalancer: { load_balancer: 5, listener: 20, pool: 20, member: 100, healthmonitor: 20 },
  };

  // One chain per service, run side by side: each service's first request waits on Keystone
  // (its own service token, then validating ours), which is slow while everything starts.
  const computeChain = async () => {
    const flavorSpecs = [
      { name: 'm1.small', vcpus: 1, ram: 2048, disk: 10 },
      { name: 'm1.medium', vcpus: 2, ram: 4096, disk: 20 },
      { name: 'm1.large', vcpus: 4, ram: 8192, disk: 40 },
    ];
    const have = (await call('GET', `${nova}/flavors/detail?is_public=None`, { token, headers: novaHeaders })).json.flavors;
    const flavors = [];
    for (const spec of flavorSpecs) {
      const f = have.find((x) => x.name === spec.name)
        ?? (await call('POST', `${nova}/flavors`, { token, headers: novaHeaders, body: { flavor: spec } })).json.flavor;
      flavors.push({ id: f.id, name: f.name, vcpus: f.vcpus, ram: f.ram, disk: f.disk });
    }
    await call('PUT', `${nova}/os-quota-sets/${project.id}`, { token, headers: novaHeaders, body: { quota_set: quotas.compute } });
    progress('flavors, compute quotas');
    return flavors;
  };

  // A tiny public image: Nova's fake driver never reads it, but Glance stores and checksums it.
  const imageChain = async () => {
    const imageName = 'marina-test-image';
    let image = (await call('GET', `${glance}/v2/images?name=${imageName}`, { token })).json.images.find((i) => i.status === 'active');
    if (!image) {
      image = (await call('POST', `${glance}/v2/images`, {
        token, body: { name: imageName, disk_format: 'raw', container_format: 'bare', visibility: 'public', min_disk: 1, os_distro: 'debian' },
      })).json;
      await call('PUT', `${glance}/v2/images/${image.id}/file`, {
        token, raw: randomBytes(4096), headers: { 'Content-Type': 'application/octet-stream' },
      });
      image = (await call('GET', `${glance}/v2/images/${image.id}`, { token })).json;
    }
    progress('image');
    return image;
  };

  // The project's network and subnet (addresses are Neutron's bookkeeping only: no traffic).
  const networkChain = async () => {
    let network = (await call('GET', `${neutron}/v2.0/networks?name=marina-net&project_id=${project.id}`, { token })).json.networks[0];
    network ??= (await call('POST', `${neutron}/v2.0/networks`, {
      token, body: { network: { name: 'marina-net', project_id: project.id } },
    })).json.network;
    let subnet = (await call('GET', `${neutron}/v2.0/subnets?network_id=${network.id}`, { token })).json.subnets[0];
    subnet ??= (await call('POST', `${neutron}/v2.0/subnets`, {
      token, body: { subnet: { name: 'marina-subnet', network_id: network.id, project_id: project.id, ip_version: 4, cidr: '192.0.2.0/24' } },
    })).json.subnet;
    await call('PUT', `${neutron}/v2.0/quotas/${project.id}`, { token, body: { quota: quotas.network } });
    progress('network, subnet, network quotas');
    return { network, subnet };
  };

  const lbQuota = async () => {
    await call('PUT', `${octavia}/v2/lbaas/quotas/${project.id}`, { token, body: { quota: quotas.loadBalancer } });
    progress('load-balancer quotas');
  };

  const [flavors, image, { network, subnet }] = await Promise.all([computeChain(), imageChain(), networkChain(), lbQuota()]);

  // Every fake hypervisor up (nova-compute registered, resource provider with inventory) and
  // every compute host's linuxbridge agent alive (so Neutron can bind ports there).
  const hosts = await poll(`${computes} nova-compute services`, 180_000, async () => {
    const hv = (await call('GET', `${nova}/os-hypervisors/detail`, { token, headers: novaHeaders })).json.hypervisors;
    const up = hv.filter((h) => h.state === 'up' && h.status === 'enabled');
    return up.length >= computes ? up.map((h) => h.service.host).sort() : undefined;
  });
  progress('hypervisors up');
  await poll(`${computes} linuxbridge agents`, 180_000, async () => {
    const agents = (await call('GET', `${neutron}/v2.0/agents?agent_type=Linux%20bridge%20agent`, { token })).json.agents;
    return agents.filter((a) => a.alive).length >= computes;
  });

  return {
    flavors,
    image: { id: image.id, name: image.name, size: image.size, status: image.status },
    network: { id: network.id, name: network.name },
    subnet: { id: subnet.id, cidr: subnet.cidr },
    computeHosts: hosts,
    quotas,
  };
}

if (mode === 'services') {
  const out = await services(rest[0], rest[1]);
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
} else if (mode === 'tenant') {
  const out = await tenant(Number(rest[0]));
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
} else {
  console.error('usage: fixtures.mjs services|tenant ...');
  process.exit(2);
}
