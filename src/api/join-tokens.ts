// The join token's format and lifetimes: shared by the join service (src/joins) and the API's
// schemas, which the browser-safe client also reads (so nothing here may need Node).

/** kubeadm's format: a public id and a secret. */
export const TOKEN_PATTERN = /^([a-z0-9]{6})\.([a-z0-9]{16})$/;

export const DEFAULT_TTL_SECONDS = 3600;
export const MAX_TTL_SECONDS = 7 * 24 * 3600;
