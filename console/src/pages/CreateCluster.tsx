import { useEffect, useRef, useState, type FormEvent } from 'react';
import { buildCluster, clusterFormFields, defaultClusterForm, newPool, ROLES, type ClusterForm, type PoolForm } from '../../../src/console-lib/cluster-form.js';
import { formErrors, NO_ERRORS, type FormErrors } from '../../../src/console-lib/form-errors.js';
import { SingleFlight } from '../../../src/console-lib/single-flight.js';
import { navigate, paths, Link } from '../router.js';
import { useApplyLocally, useSession } from '../session.js';
import { FieldError, fieldProps, focusFirstError, Page } from '../components/ui.js';

const FORM = 'create';
const ROLE_LABEL: Record<(typeof ROLES)[number], string> = { etcd: 'etcd', controlplane: 'Control plane', worker: 'Worker' };

export function CreateClusterPage({ project }: { project: string }) {
  const { client } = useSession();
  const applyLocally = useApplyLocally();
  const [form, setForm] = useState<ClusterForm>(defaultClusterForm);
  const [errors, setErrors] = useState<FormErrors>(NO_ERRORS);
  const [busy, setBusy] = useState(false);
  const guard = useRef(new SingleFlight());
  const formEl = useRef<HTMLFormElement>(null);
  const fe = errors.fields;
  const [versions, setVersions] = useState<{ default: string | null; versions: string[] }>({ default: null, versions: [] });
  useEffect(() => {
    let live = true;
    client
      .kubernetesVersions()
      .then((v) => live && setVersions(v))
      .catch(() => undefined); // suggestions only: the field still takes free text
    return () => {
      live = false;
    };
  }, [client]);

  /** Edits a field and drops the API's message about it (it may no longer hold). */
  const edit = (field: string, change: (f: ClusterForm) => ClusterForm) => {
    setForm(change);
    if (fe[field]) {
      const { [field]: _gone, ...rest } = fe;
      setErrors({ ...errors, fields: rest });
    }
  };
  const editPool = (i: number, field: string, change: (p: PoolForm) => PoolForm) =>
    edit(`spec.nodePools[${i}].${field}`, (f) => ({ ...f, pools: f.pools.map((p, j) => (j === i ? change(p) : p)) }));

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const result = await guard.current
      .run(async () => {
        setBusy(true);
        setErrors(NO_ERRORS);
        try {
          return await client.create(buildCluster(form, project));
        } finally {
          setBusy(false);
        }
      })
      .catch((err: unknown) => {
        setErrors(formErrors(err, clusterFormFields(form)));
        requestAnimationFrame(() => focusFirstError(formEl.current));
        return undefined;
      });
    if (result?.ran) {
      applyLocally(result.value, 'ADDED');
      navigate(paths.cluster(project, result.value.metadata.name));
    }
  };

  return (
    <Page title="Create a cluster">
      <p className="muted">
        In project <strong>{project}</strong>. Marina checks everything; its messages appear next to the fields. <Link to={paths.clusters(project)}>Back to the clusters</Link>
      </p>
      <form ref={formEl} onSubmit={submit} noValidate className="form" aria-describedby={errors.general ? 'create-general' : undefined}>
        {errors.general && (
          <p id="create-general" className="error" role="alert" tabIndex={-1}>
            {errors.general}
          </p>
        )}
        <div className="row">
          <div className="field">
            <label htmlFor="c-name">Cluster name</label>
            <input
              id="c-name"
              value={form.name}
              onChange={(e) => edit('metadata.name', (f) => ({ ...f, name: e.target.value }))}
              autoComplete="off"
              spellCheck={false}
              {...fieldProps(FORM, 'metadata.name', fe, 'c-name-help')}
            />
            <p id="c-name-help" className="help">
              Lower-case letters, digits and “-”.
            </p>
            <FieldError form={FORM} field="metadata.name" errors={fe} />
          </div>
          <div className="field">
            <label htmlFor="c-version">Kubernetes version</label>
            <input
              id="c-version"
              value={form.kubernetesVersion}
              placeholder="server default"
              onChange={(e) => edit('spec.kubernetesVersion', (f) => ({ ...f, kubernetesVersion: e.target.value }))}
              autoComplete="off"
              spellCheck={false}
              list="c-versions"
              {...fieldProps(FORM, 'spec.kubernetesVersion', fe, 'c-version-help')}
            />
            <datalist id="c-versions">
              {versions.versions.map((v) => (
                <option key={v} value={v} />
              ))}
            </datalist>
            <p id="c-version-help" className="help">
              {versions.versions.length > 0
                ? `Supported: ${versions.versions.join(', ')}; empty: ${versions.default ?? 'the newest'}.`
                : 'For example v1.36.3; empty: the newest version this Marina supports.'}
            </p>
            <FieldError form={FORM} field="spec.kubernetesVersion" errors={fe} />
          </div>
        </div>

        <fieldset>
          <legend>Network</legend>
          <div className="row">
            <div className="field">
              <label htmlFor="c-pod">Pod CIDR</label>
              <input
                id="c-pod"
                value={form.podCIDR}
                placeholder="10.244.0.0/16"
                onChange={(e) => edit('spec.network.podCIDR', (f) => ({ ...f, podCIDR: e.target.value }))}
                autoComplete="off"
                spellCheck={false}
                {...fieldProps(FORM, 'spec.network.podCIDR', fe)}
              />
              <FieldError form={FORM} field="spec.network.podCIDR" errors={fe} />
            </div>
            <div className="field">
              <label htmlFor="c-svc">Service CIDR</label>
              <input
                id="c-svc"
                value={form.serviceCIDR}
                placeholder="10.96.0.0/16"
                onChange={(e) => edit('spec.network.serviceCIDR', (f) => ({ ...f, serviceCIDR: e.target.value }))}
                autoComplete="off"
                spellCheck={false}
                {...fieldProps(FORM, 'spec.network.serviceCIDR', fe)}
              />
              <FieldError form={FORM} field="spec.network.serviceCIDR" errors={fe} />
            </div>
          </div>
        </fieldset>

        <fieldset aria-describedby={fe['spec.nodePools'] ? 'create-err-spec_nodePools' : undefined}>
          <legend>Node pools</legend>
          <FieldError form={FORM} field="spec.nodePools" errors={fe} />
          {form.pools.map((pool, i) => {
            const at = (f: string) => `spec.nodePools[${i}].${f}`;
            return (
              <fieldset key={i} className="pool">
                <legend>Pool {i + 1}</legend>
                <div className="row">
                  <div className="field">
                    <label htmlFor={`p${i}-name`}>Name</label>
                    <input
                      id={`p${i}-name`}
                      value={pool.name}
                      onChange={(e) => editPool(i, 'name', (p) => ({ ...p, name: e.target.value }))}
                      autoComplete="off"
                      spellCheck={false}
                      {...fieldProps(FORM, at('name'), fe)}
                    />
                    <FieldError form={FORM} field={at('name')} errors={fe} />
                  </div>
                  <div className="field">
                    <label htmlFor={`p${i}-replicas`}>Replicas</label>
                    <input
                      id={`p${i}-replicas`}
                      type="number"
                      inputMode="numeric"
                      value={pool.replicas}
                      onChange={(e) => editPool(i, 'replicas', (p) => ({ ...p, replicas: e.target.value }))}
                      {...fieldProps(FORM, at('replicas'), fe)}
                    />
                    <FieldError form={FORM} field={at('replicas')} errors={fe} />
                  </div>
                  <fieldset className="roles field" {...fieldProps(FORM, at('roles'), fe)}>
                    <legend>Roles</legend>
                    {ROLES.map((r) => (
                      <label key={r} className="check">
                        <input
                          type="checkbox"
                          checked={pool.roles[r]}
                          onChange={(e) => editPool(i, 'roles', (p) => ({ ...p, roles: { ...p.roles, [r]: e.target.checked } }))}
                        />
                        {ROLE_LABEL[r]}
                      </label>
                    ))}
                    <FieldError form={FORM} field={at('roles')} errors={fe} />
                  </fieldset>
                  {form.pools.length > 1 && (
                    <button
                      type="button"
                      className="link"
                      onClick={() => {
                        setForm((f) => ({ ...f, pools: f.pools.filter((_, j) => j !== i) }));
                        setErrors(NO_ERRORS); // indices moved
                      }}
                    >
                      Remove pool {i + 1}
                    </button>
                  )}
                </div>
              </fieldset>
            );
          })}
          <button
            type="button"
            onClick={() => {
              setForm((f) => ({ ...f, pools: [...f.pools, newPool(`pool${f.pools.length + 1}`, ['worker'], 1)] }));
              setErrors(NO_ERRORS);
            }}
          >
            Add pool
          </button>
        </fieldset>

        <div className="form-actions">
          <button type="submit" className="primary" disabled={busy} aria-busy={busy}>
            {busy ? 'Creating…' : 'Create cluster'}
          </button>
          <Link to={paths.clusters(project)}>Cancel</Link>
        </div>
      </form>
    </Page>
  );
}
