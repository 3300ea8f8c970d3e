// Shared helpers of the three pages: elements, Chinese names, errors,
// storage and a reconnecting stream loop.

export const $ = (sel, root = document) => root.querySelector(sel);

// h('li', {class: 'x', testid: 'offer', onclick: f}, 'text', child …)
export function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'testid') el.dataset.testid = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids.flat()) if (k != null && k !== false) el.append(k);
  return el;
}

export const TIER_ZH = { TIER_CITY: '市级专家', TIER_COUNTY_TOWN: '县镇级骨干', TIER_VILLAGE: '村级实用人才' };
export const CORPS_ZH = { CORPS_GRAIN_OIL: '粮油', CORPS_VEGETABLE: '蔬菜', CORPS_FRUIT: '果树', CORPS_LIVESTOCK: '畜牧', CORPS_FORESTRY_WATER: '林水' };
export const STATE_ZH = {
  TICKET_STATE_QUEUED: '排队等候', TICKET_STATE_OFFERED: '已派给专家，等待接单', TICKET_STATE_ACCEPTED: '专家已接单',
  TICKET_STATE_RESOLVED: '已答复', TICKET_STATE_UNROUTABLE: '暂无人能接', TICKET_STATE_CANCELLED: '已取消', TICKET_STATE_UNSPECIFIED: '未知',
};
export const EVENT_ZH = {
  TICKET_EVENT_KIND_SUBMITTED: '已提交', TICKET_EVENT_KIND_QUEUED: '排队等候', TICKET_EVENT_KIND_OFFERED: '派给专家',
  TICKET_EVENT_KIND_DECLINED: '专家婉拒', TICKET_EVENT_KIND_OFFER_TIMED_OUT: '专家未及时回应', TICKET_EVENT_KIND_ACCEPTED: '专家接单',
  TICKET_EVENT_KIND_ESCALATED: '转给上一级', TICKET_EVENT_KIND_RESOLVED: '已答复', TICKET_EVENT_KIND_UNROUTABLE: '暂无人能接',
  TICKET_EVENT_KIND_CANCELLED: '已取消', TICKET_EVENT_KIND_REROUTED: '改派他人', TICKET_EVENT_KIND_RATED: '农户评价',
};
const ENUMS = {
  AVAIL: ['AVAILABILITY_UNSPECIFIED', 'AVAILABILITY_ONLINE', 'AVAILABILITY_AWAY', 'AVAILABILITY_OFFLINE'],
  TIER: ['TIER_UNSPECIFIED', 'TIER_CITY', 'TIER_COUNTY_TOWN', 'TIER_VILLAGE'],
  CORPS: ['CORPS_UNSPECIFIED', 'CORPS_GRAIN_OIL', 'CORPS_VEGETABLE', 'CORPS_FRUIT', 'CORPS_LIVESTOCK', 'CORPS_FORESTRY_WATER'],
  STATE: ['TICKET_STATE_UNSPECIFIED', 'TICKET_STATE_QUEUED', 'TICKET_STATE_OFFERED', 'TICKET_STATE_ACCEPTED', 'TICKET_STATE_RESOLVED', 'TICKET_STATE_UNROUTABLE', 'TICKET_STATE_CANCELLED'],
  DELIVERY: ['DELIVERY_STATE_UNSPECIFIED', 'DELIVERY_STATE_PENDING', 'DELIVERY_STATE_DELIVERED', 'DELIVERY_STATE_FAILED'],
  EVENT: ['TICKET_EVENT_KIND_UNSPECIFIED', 'TICKET_EVENT_KIND_SUBMITTED', 'TICKET_EVENT_KIND_QUEUED', 'TICKET_EVENT_KIND_OFFERED', 'TICKET_EVENT_KIND_DECLINED', 'TICKET_EVENT_KIND_OFFER_TIMED_OUT', 'TICKET_EVENT_KIND_ACCEPTED', 'TICKET_EVENT_KIND_ESCALATED', 'TICKET_EVENT_KIND_RESOLVED', 'TICKET_EVENT_KIND_UNROUTABLE', 'TICKET_EVENT_KIND_CANCELLED', 'TICKET_EVENT_KIND_REROUTED', 'TICKET_EVENT_KIND_RATED'],
};

// An enum value as its name, whether sent by name, by number or omitted.
export function en(kind, v) {
  const names = ENUMS[kind];
  if (v == null || v === '') return names[0];
  if (typeof v === 'number') return names[v] || names[0];
  return v;
}

export const OPEN_STATES = ['TICKET_STATE_QUEUED', 'TICKET_STATE_OFFERED', 'TICKET_STATE_ACCEPTED'];

// int64 fields arrive as strings.
export const num = (v) => (v == null || v === '' ? 0 : Number(v));

export function fmtTime(ms) {
  if (!ms) return '';
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getMonth() + 1}月${d.getDate()}日 ${p(d.getHours())}:${p(d.getMinutes())}`;
}

export const fmtKm = (km) => (km == null ? '' : km < 1 ? '1公里内' : `约${(Math.round(km * 10) / 10).toFixed(1)}公里`);

export function fmtLeft(ms) {
  if (ms <= 0) return '已到期';
  const s = Math.ceil(ms / 1000);
  const m = Math.floor(s / 60);
  return `${m}:${String(s % 60).padStart(2, '0')}`;
}

// Chinese names of request fields, for error messages.
const FIELD_ZH = {
  text: '问题描述', location: '位置', 'location.division_code': '所选地点', 'location.point': '定位', contact: '联系方式',
  idempotency_key: '提交编号', ticket_id: '问题编号', ticket_secret: '问题密钥', answer: '答复', reason: '理由',
  talent_id: '人员编号', ttl_seconds: '有效期', data: '文件', format: '文件格式', limit: '人数', parent_code: '上级地区',
  availability: '状态', state: '状态', page_size: '每页条数',
};

const CODE_ZH = {
  invalid_argument: '填写有误', unauthenticated: '未登录，或令牌无效、已过期', permission_denied: '没有权限做这件事',
  not_found: '没有找到', resource_exhausted: '服务器正忙或内容过大，请稍后再试', unavailable: '连不上服务器，请检查网络后再试',
  deadline_exceeded: '等待超时，请再试一次', failed_precondition: '当前状态下不能这样做', canceled: '已取消',
  already_exists: '已经存在', aborted: '操作冲突，请再试一次', internal: '服务器出错了', unknown: '出错了', unimplemented: '服务器不支持此功能',
};

function describeZh(desc) {
  let m;
  if (/^is empty/.test(desc)) return '不能为空';
  if ((m = /^is (\d+) characters long; the limit is (\d+)/.exec(desc))) return `有 ${m[1]} 字，最多 ${m[2]} 字`;
  if (/^missing/.test(desc)) return '没有填写';
  if (/not a 12-digit division code|unknown division code/.test(desc)) return '不是渭南市的地区';
  return desc;
}

// Chinese lines for a ConnectError: [headline, ...details].
export function errorLines(err) {
  if (!err || !err.code) return ['出错了：' + String((err && err.message) || err)];
  const lines = [CODE_ZH[err.code] || '出错了'];
  const vs = err.violations || [];
  for (const v of vs) {
    const name = FIELD_ZH[v.field] || v.field;
    lines.push(`${name}：${describeZh(v.description)}`);
  }
  if (!vs.length && err.message && err.code !== 'unavailable' && err.code !== 'canceled') lines.push(err.message);
  return lines;
}

// Shows an error (or clears it with null) in a role=alert box.
export function showError(box, err) {
  box.replaceChildren();
  box.hidden = !err;
  if (!err) return;
  const [head, ...rest] = typeof err === 'string' ? [err] : errorLines(err);
  box.append(h('strong', null, head));
  if (rest.length) box.append(h('ul', null, rest.map((l) => h('li', null, l))));
  if (err.code) box.dataset.code = err.code;
}

export function say(box, text) {
  box.textContent = text;
}

// Storage that never throws (private modes, full quota).
export function load(store, key, fallback) {
  try {
    const v = store.getItem(key);
    return v == null ? fallback : JSON.parse(v);
  } catch { return fallback; }
}
export function save(store, key, value) {
  try {
    if (value == null) store.removeItem(key);
    else store.setItem(key, JSON.stringify(value));
  } catch { /* ignore */ }
}

const FATAL = ['unauthenticated', 'permission_denied', 'not_found', 'invalid_argument', 'unimplemented'];

// Runs a stream again and again with back-off (1 s doubling to 30 s, with
// jitter) until stop() or a fatal error. open(signal, onOpen) must return
// the stream's promise. onStatus(kind, info): 'connecting', 'live',
// 'waiting' (ms), 'failed' (error), 'ended'.
export function keepStreaming(open, { onStatus = () => {}, done = () => false } = {}) {
  let stopped = false, attempt = 0, ctrl = null, wake = null, timer = 0;
  const nudge = () => { clearTimeout(timer); if (wake) wake(); };
  const online = () => { attempt = 0; nudge(); };
  addEventListener('online', online);
  (async () => {
    while (!stopped) {
      ctrl = new AbortController();
      onStatus('connecting', attempt);
      let err = null;
      try {
        await open(ctrl.signal, () => { attempt = 0; onStatus('live'); });
      } catch (e) { err = e; }
      if (stopped) break;
      if (err && FATAL.includes(err.code)) { onStatus('failed', err); break; }
      if (done()) { onStatus('ended'); break; }
      const delay = Math.min(30000, 1000 * 2 ** attempt) * (0.6 + Math.random() * 0.4);
      attempt = Math.min(attempt + 1, 6);
      onStatus('waiting', delay, err);
      await new Promise((r) => { wake = r; timer = setTimeout(r, delay); });
      wake = null;
    }
    removeEventListener('online', online);
  })();
  return {
    stop() { stopped = true; if (ctrl) ctrl.abort(); nudge(); removeEventListener('online', online); },
    nudge,
  };
}

export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

// A rating as stars: ★★★★☆ for 4.
export const starText = (n) => '★'.repeat(n) + '☆'.repeat(Math.max(0, 5 - n));
