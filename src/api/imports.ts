// Well-known names of imported servers and their join tokens (shared by the server, the
// controllers and the CLI).

/** On Machines of servers that joined with a token asking for approval: `required`. */
export const ANNOTATION_APPROVAL = 'marina.dev/approval';
/** Set to `true` by an operator (`marina cluster approve`) to admit such a machine. */
export const ANNOTATION_APPROVED = 'marina.dev/approved';
/** The host name an imported server reported when it joined. */
export const ANNOTATION_HOSTNAME = 'marina.dev/hostname';
/** The id of the join token a server joined with. */
export const ANNOTATION_JOIN_TOKEN = 'marina.dev/join-token';

/** Join tokens are stored as Secrets of this type (only their SHA-256), labelled with their id. */
export const JOIN_TOKEN_SECRET_TYPE = 'marina.dev/join-token';
export const LABEL_JOIN_TOKEN = 'marina.dev/join-token';
