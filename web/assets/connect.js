// A small client for the Connect protocol with JSON (unary calls and server
// streams) against xwn's own origin. No dependencies.

const PKG = '/xingweinong.v1.';

// Connect's codes for HTTP statuses when the body is no Connect error.
const HTTP_CODE = { 400: 'internal', 401: 'unauthenticated', 403: 'permission_denied', 404: 'unimplemented', 408: 'deadline_exceeded', 413: 'resource_exhausted', 429: 'unavailable', 502: 'unavailable', 503: 'unavailable', 504: 'unavailable' };

export class ConnectError extends Error {
  constructor(code, message, details = [], status = 0) {
    super(message || code);
    this.name = 'ConnectError';
    this.code = code || 'unknown';
    this.details = Array.isArray(details) ? details : [];
    this.status = status;
  }

  // Field violations of google.rpc.BadRequest details: [{field, description}].
  get violations() {
    const out = [];
    for (const d of this.details) {
      if (!d || !String(d.type || '').endsWith('google.rpc.BadRequest')) continue;
      const fv = d.debug && (d.debug.fieldViolations || d.debug.field_violations);
      if (Array.isArray(fv)) {
        for (const v of fv) out.push({ field: String(v.field || ''), description: String(v.description || '') });
      } else if (typeof d.value === 'string') {
        try { out.push(...decodeBadRequest(b64ToBytes(d.value))); } catch { /* unreadable detail */ }
      }
    }
    return out;
  }
}

function errorFrom(status, text) {
  try {
    const j = JSON.parse(text);
    if (j && typeof j.code === 'string') return new ConnectError(j.code, j.message || '', j.details, status);
  } catch { /* not JSON */ }
  return new ConnectError(HTTP_CODE[status] || 'unknown', `HTTP ${status}`, [], status);
}

function networkError(e, timedOut) {
  if (timedOut) return new ConnectError('deadline_exceeded', 'timed out');
  if (e && e.name === 'AbortError') return new ConnectError('canceled', 'canceled');
  return new ConnectError('unavailable', (e && e.message) || 'network error');
}

function headers(token, contentType, timeoutMs) {
  const h = { 'Content-Type': contentType, 'Connect-Protocol-Version': '1' };
  if (timeoutMs) h['Connect-Timeout-Ms'] = String(timeoutMs);
  if (token) h.Authorization = 'Bearer ' + token;
  return h;
}

// Links an outer AbortSignal to a new controller, with an optional timeout.
function controller(signal, timeoutMs) {
  const c = new AbortController();
  const state = { timedOut: false, timer: 0 };
  if (signal) {
    if (signal.aborted) c.abort();
    else signal.addEventListener('abort', () => c.abort(), { once: true });
  }
  if (timeoutMs) state.timer = setTimeout(() => { state.timedOut = true; c.abort(); }, timeoutMs);
  return [c, state];
}

// One unary call; resolves with the reply object or rejects with a ConnectError.
export async function unary(service, method, message, { token, timeoutMs = 15000, signal } = {}) {
  const [c, st] = controller(signal, timeoutMs);
  try {
    const res = await fetch(PKG + service + '/' + method, {
      method: 'POST',
      headers: headers(token, 'application/json', timeoutMs),
      body: JSON.stringify(message || {}),
      signal: c.signal,
      cache: 'no-store',
      credentials: 'same-origin',
    });
    const text = await res.text();
    if (!res.ok) throw errorFrom(res.status, text);
    return text ? JSON.parse(text) : {};
  } catch (e) {
    if (e instanceof ConnectError) throw e;
    if (e instanceof SyntaxError) throw new ConnectError('internal', 'the reply is not JSON');
    throw networkError(e, st.timedOut);
  } finally {
    clearTimeout(st.timer);
  }
}

// A unary call over XMLHttpRequest, for upload progress: onProgress(sent, total).
export function unaryXhr(service, method, message, { token, onProgress, signal } = {}) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open('POST', PKG + service + '/' + method);
    const h = headers(token, 'application/json', 0);
    for (const k in h) x.setRequestHeader(k, h[k]);
    if (onProgress) x.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : 0);
    x.onload = () => {
      if (x.status >= 200 && x.status < 300) {
        try { resolve(x.responseText ? JSON.parse(x.responseText) : {}); } catch { reject(new ConnectError('internal', 'the reply is not JSON')); }
      } else reject(errorFrom(x.status, x.responseText));
    };
    x.onerror = () => reject(new ConnectError('unavailable', 'network error'));
    x.onabort = () => reject(new ConnectError('canceled', 'canceled'));
    if (signal) signal.addEventListener('abort', () => x.abort(), { once: true });
    x.send(JSON.stringify(message || {}));
  });
}

const enc = new TextEncoder();

function envelope(obj) {
  const body = enc.encode(JSON.stringify(obj || {}));
  const out = new Uint8Array(5 + body.length);
  new DataView(out.buffer).setUint32(1, body.length);
  out.set(body, 5);
  return out;
}

// A server stream. onMessage(obj) for each message, onOpen() once the
// server has answered. Resolves when the stream ends cleanly; rejects with a
// ConnectError otherwise (including a stream that stops without its end).
export async function serverStream(service, method, message, { token, signal, onMessage, onOpen } = {}) {
  const [c] = controller(signal, 0);
  let res;
  try {
    res = await fetch(PKG + service + '/' + method, {
      method: 'POST',
      headers: headers(token, 'application/connect+json', 0),
      body: envelope(message),
      signal: c.signal,
      cache: 'no-store',
      credentials: 'same-origin',
    });
  } catch (e) {
    throw networkError(e, false);
  }
  if (!res.ok) throw errorFrom(res.status, await res.text().catch(() => ''));
  if (onOpen) onOpen();
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = new Uint8Array(0);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const joined = new Uint8Array(buf.length + value.length);
      joined.set(buf);
      joined.set(value, buf.length);
      buf = joined;
      while (buf.length >= 5) {
        const flags = buf[0];
        const len = new DataView(buf.buffer, buf.byteOffset + 1, 4).getUint32(0);
        if (buf.length < 5 + len) break;
        const data = buf.subarray(5, 5 + len);
        buf = buf.slice(5 + len);
        if (flags & 1) throw new ConnectError('internal', 'compressed messages are not supported');
        const obj = len ? JSON.parse(dec.decode(data)) : {};
        if (flags & 2) {
          if (obj && obj.error) {
            const er = obj.error;
            throw new ConnectError(er.code || 'unknown', er.message || '', er.details, res.status);
          }
          return;
        }
        if (onMessage) onMessage(obj);
      }
    }
  } catch (e) {
    if (e instanceof ConnectError) throw e;
    if (e instanceof SyntaxError) throw new ConnectError('internal', 'a message is not JSON');
    throw networkError(e, false);
  } finally {
    c.abort();
  }
  throw new ConnectError('unavailable', 'the stream ended early');
}

export function b64ToBytes(s) {
  const bin = atob(s.replace(/-/g, '+').replace(/_/g, '/'));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

// google.rpc.BadRequest in protobuf wire form: field 1, repeated
// FieldViolation {1: field, 2: description}.
function decodeBadRequest(bytes) {
  const out = [];
  for (const [no, sub] of fields(bytes)) {
    if (no !== 1) continue;
    const v = { field: '', description: '' };
    for (const [n, b] of fields(sub)) {
      if (n === 1) v.field = new TextDecoder().decode(b);
      else if (n === 2) v.description = new TextDecoder().decode(b);
    }
    out.push(v);
  }
  return out;
}

function* fields(b) {
  let i = 0;
  const varint = () => {
    let x = 0, shift = 0, byte;
    do { byte = b[i++]; x += (byte & 0x7f) * 2 ** shift; shift += 7; } while (byte & 0x80 && i < b.length);
    return x;
  };
  while (i < b.length) {
    const key = varint();
    const wire = key & 7;
    const no = Math.floor(key / 8);
    if (wire === 2) { const n = varint(); yield [no, b.subarray(i, i + n)]; i += n; }
    else if (wire === 0) varint();
    else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else return;
  }
}
