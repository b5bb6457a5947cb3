// Words for the mirror page: sync errors in plain sentences, and which form field an API
// validation message is about.

const ERROR_SENTENCES = {
  auth: "The source registry refused the credentials. Check the upstream username and password (or the robot account there).",
  not_found: "The source repository or one of its tags was not found. Check the registry location and the tag patterns.",
  rate_limited: "The source registry is rate-limiting requests. The next attempt will try again; a longer interval or credentials may help.",
  timeout: "The source registry took too long to answer. It may be slow or overloaded; the next attempt will retry.",
  connection: "Moorage could not connect to the source registry. Check the host name, port, proxy settings and firewall.",
  tls: "The TLS certificate of the source registry could not be verified. Install its CA certificate, or turn off “Verify TLS” if you trust the network.",
  digest_mismatch: "The content received did not match its digest. The source or a proxy altered the data; nothing was stored.",
  unavailable: "The source registry kept answering with a server error (5xx), even after retries. It may be down or overloaded; the next sync tries again.",
  protocol: "The source registry answered in a way Moorage does not understand. Check that the location points at a container registry.",
  invalid_source_registry: "The registry location is not allowed or is not valid (it may point into an internal network).",
  decryption_failed: "The stored upstream credentials cannot be decrypted (the database secret key changed). Enter the username and password again.",
  worker_lost: "The worker running this sync stopped unexpectedly (a restart or crash). Another attempt will pick it up.",
  no_matching_architectures: "None of the selected architectures exists in the source image. Adjust the architecture filter.",
  cancelled: "The sync was cancelled.",
  internal: "Moorage hit an internal error during the sync. The server log has the details.",
};

/** A sentence for a run's error kind (falls back to the raw message). */
export function explainError(kind, message) {
  if (kind && ERROR_SENTENCES[kind]) return ERROR_SENTENCES[kind];
  if (kind) return `The sync failed (${kind.replaceAll("_", " ")}).`;
  return message || "The sync failed.";
}

// Validation texts of POST/PUT .../mirror (docs/api.md) → the form field they are about.
const FIELD_PATTERNS = [
  [/external registry reference|registry location|cannot resolve hostname|external_reference/i, "external_reference"],
  [/sync_start_date|datetime format/i, "sync_start_date"],
  [/sync_interval/i, "sync_interval"],
  [/rule_value|root_rule|rule_kind|tag_glob/i, "root_rule"],
  [/robot/i, "robot_username"],
  [/password/i, "external_registry_password"],
  [/username/i, "external_registry_username"],
  [/architecture/i, "architecture_filter"],
  [/http_proxy/i, "http_proxy"],
  [/https_proxy/i, "https_proxy"],
  [/no_proxy/i, "no_proxy"],
  [/verify_tls/i, "verify_tls"],
  [/skopeo_timeout/i, "skopeo_timeout_interval"],
  [/is_enabled/i, "is_enabled"],
];

// jsonschema messages name the offending value, not the key: "0 is less than the minimum of 1".
const VALUE_MESSAGE = /^(.+?) is (?:less than the minimum|greater than the maximum|not of type|not one of|not valid under)/;

/**
 * The field a validation message is about. ``sent`` is the body that was sent: for schema
 * messages that only quote the value, the key holding that value is the field.
 */
export function fieldForMessage(message, sent = {}) {
  for (const [pattern, name] of FIELD_PATTERNS) {
    if (pattern.test(message)) return name;
  }
  const quoted = VALUE_MESSAGE.exec(message);
  if (quoted) {
    const text = quoted[1];
    for (const [key, value] of flatten(sent)) {
      if (JSON.stringify(value) === text || String(value) === text || `'${value}'` === text) {
        return key;
      }
    }
    if (/minimum of 1\b|maximum of 2147483647/.test(message)) return "sync_interval";
  }
  return null;
}

function flatten(body, out = []) {
  for (const [key, value] of Object.entries(body || {})) {
    if (value && typeof value === "object" && !Array.isArray(value)) flatten(value, out);
    else out.push([key, value]);
  }
  return out;
}

export const STATUS_TEXT = {
  NEVER_RUN: "Configured, never synced yet.",
  SYNC_NOW: "A sync is queued and will start within seconds.",
  SYNCING: "Syncing now.",
  SUCCESS: "The last sync succeeded.",
  FAIL: "The last sync failed.",
  CANCEL: "The last sync was cancelled. The mirror stays idle until you press Sync now.",
};

export const TRIGGER_TEXT = {
  schedule: "scheduled",
  sync_now: "sync now",
  retry: "retry",
  takeover: "taken over",
};
