// The admin page: roster statistics, roster and liaison imports with row
// errors, tickets by state, notification deliveries, responder tokens.
import { unary, unaryXhr, serverStream } from './connect.js';
import { $, h, STATE_ZH, TIER_ZH, CORPS_ZH, en, num, fmtTime, showError, load, save, say, errorLines } from './ui.js';

const TOKEN_KEY = 'xwn.adminToken';
const R = 'RosterService';
let token = '';

const call = (method, msg, opts) => unary(R, method, msg, { token, ...opts });

// ---------------------------------------------------------------- sign-in
$('#signin-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const tok = $('#admin-token').value.trim();
  const box = $('#signin-error');
  if (!tok) { showError(box, '请填写管理令牌。'); $('#admin-token').focus(); return; }
  $('#sign-in').disabled = true;
  try {
    token = tok;
    const s = await call('GetRosterStats', {});
    showError(box, null);
    enter(s);
  } catch (e) {
    token = '';
    showError(box, e);
  } finally {
    $('#sign-in').disabled = false;
  }
});

function enter(stats) {
  save(sessionStorage, TOKEN_KEY, token);
  $('#admin-token').value = '';
  $('#signin').hidden = true;
  $('#console').hidden = false;
  if (stats) renderStats(stats);
  else refreshStats();
  loadTickets(false);
  loadDeliveries();
  loadFigures();
  $('#stats-h').tabIndex = -1;
  $('#stats-h').focus();
}

function signOut(err) {
  token = '';
  save(sessionStorage, TOKEN_KEY, null);
  $('#console').hidden = true;
  $('#signin').hidden = false;
  showError($('#signin-error'), err || null);
  $('#admin-token').focus();
}
$('#sign-out').addEventListener('click', () => signOut());

function failed(box, e) {
  showError(box, e);
  if (e && e.code === 'unauthenticated') signOut(e);
}

// ---------------------------------------------------------------- stats
async function refreshStats() {
  try {
    const s = await call('GetRosterStats', {});
    showError($('#stats-error'), null);
    renderStats(s);
    return s;
  } catch (e) {
    failed($('#stats-error'), e);
    return null;
  }
}
$('#stats-refresh').addEventListener('click', refreshStats);

function bars(title, rows) {
  const max = Math.max(1, ...rows.map((r) => r[1]));
  return h('div', { class: 'chart' },
    h('h3', null, title),
    h('ul', { class: 'bars', 'aria-label': title }, rows.map(([name, n]) => {
      const fill = h('span', { class: 'fill' });
      fill.style.width = (100 * n / max).toFixed(1) + '%';
      return h('li', { 'data-key': name }, h('span', null, name), h('span', { class: 'bar', 'aria-hidden': 'true' }, fill), h('span', { class: 'n' }, n.toLocaleString('zh-CN')));
    })));
}

function renderStats(s) {
  const byCorps = s.byCorps || {}, byCounty = s.byCounty || {};
  const kpi = (label, v, id) => h('div', { class: 'kpi', testid: id }, h('b', null, num(v).toLocaleString('zh-CN')), label);
  $('#stats').dataset.rosterVersion = String(num(s.rosterVersion));
  $('#stats').replaceChildren(
    h('div', { class: 'kpis' }, kpi('总人数', s.total, 'stat-total'), kpi('在岗', s.active, 'stat-active'), kpi('专家服务团成员', s.corpsMembers, 'stat-corps'), kpi('名册版本', s.rosterVersion, 'roster-version')),
    h('div', { class: 'cols' },
      h('div', null,
        bars('按层级', [[TIER_ZH.TIER_CITY, num(s.city)], [TIER_ZH.TIER_COUNTY_TOWN, num(s.countyTown)], [TIER_ZH.TIER_VILLAGE, num(s.village)]]),
        bars('按专家服务团', Object.values(CORPS_ZH).map((c) => [c, num(byCorps[c])]))),
      bars('按县（市、区）', Object.entries(byCounty).map(([k, v]) => [k, num(v)]).sort((a, b) => b[1] - a[1]))));
}

// ---------------------------------------------------------------- imports
function formatOf(file, chosen) {
  if (chosen) return chosen;
  return /\.(jsonl|ndjson|json)$/i.test(file.name) ? 'ROSTER_FORMAT_JSONL' : 'ROSTER_FORMAT_CSV';
}

function readBase64(file, progress) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onprogress = (e) => { if (e.lengthComputable) progress(e.loaded / e.total); };
    r.onload = () => { const s = String(r.result); resolve(s.slice(s.indexOf(',') + 1)); };
    r.onerror = () => reject(new Error('读不了这个文件'));
    r.readAsDataURL(file);
  });
}

// "line[7].phone" -> {line: 7, field: 'phone'}
function rowOf(v) {
  const m = /^line\[(\d+)\](?:\.(.*))?$/.exec(v.field) || /^line (\d+)(?::\s*|\s+)(.*)$/.exec(v.field);
  return m ? { line: Number(m[1]), field: m[2] || '', message: v.description } : { line: 0, field: v.field, message: v.description };
}

function rowTable(rows, testid) {
  return h('div', { class: 'table-wrap' }, h('table', { testid, class: 'row-errors' },
    h('caption', { class: 'sr' }, '有问题的行'),
    h('thead', null, h('tr', null, h('th', { scope: 'col' }, '行号'), h('th', { scope: 'col' }, '字段'), h('th', { scope: 'col' }, '问题'))),
    h('tbody', null, rows.map((r) => h('tr', { testid: 'row-error', 'data-line': String(r.line), 'data-field': r.field },
      h('td', null, r.line ? String(r.line) : '—'), h('td', null, r.field || '（整行）'), h('td', null, r.message))))));
}

// The totals a refusal gives in its google.rpc.ErrorInfo (reason BAD_ROWS):
// the details hold only the first rows of a file with many bad ones.
function badRowTotals(e) {
  for (const d of e.details || []) {
    if (!d || !String(d.type || '').endsWith('google.rpc.ErrorInfo')) continue;
    const info = d.debug || {};
    if (info.reason !== 'BAD_ROWS' || !info.metadata) continue;
    return { problems: num(info.metadata.problems), shown: num(info.metadata.shown) };
  }
  return null;
}

// Every problem of the file, streamed by CheckRosterFile/CheckLiaisonsFile.
async function allRowErrors(method, file) {
  const rows = [];
  await serverStream(R, method, file, {
    token,
    onMessage: (m) => rows.push({ line: num(m.line), field: m.field || '', message: m.message || '' }),
  });
  return rows;
}

function importer(form, fileInput, formatSelect, button, progress, out, method, what, rowsTestid) {
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const file = fileInput.files && fileInput.files[0];
    out.replaceChildren();
    delete out.dataset.rows;
    if (!file) { out.append(h('div', { class: 'alert', role: 'alert' }, `请先选择${what}文件。`)); fileInput.focus(); return; }
    button.disabled = true;
    progress.hidden = false;
    progress.value = 0;
    out.append(h('p', { class: 'status' }, `正在读取 ${file.name}…`));
    const before = num($('#stats').dataset.rosterVersion);
    let sent = null;
    try {
      const data = await readBase64(file, (f) => { progress.value = 10 * f; });
      out.replaceChildren(h('p', { class: 'status' }, `正在上传 ${file.name}（${(file.size / 1024).toFixed(0)} KB）…`));
      sent = { format: formatOf(file, formatSelect.value), data };
      const rep = await unaryXhr(R, method, sent, {
        token,
        onProgress: (sent, total) => { if (total) progress.value = 10 + 88 * sent / total; },
      });
      progress.value = 100;
      const rows = (rep.errors || []).map((e) => ({ line: num(e.line), field: e.field || '', message: e.message || '' }));
      out.replaceChildren(h('p', { class: 'ok', role: 'status', testid: 'import-ok' },
        `导入成功：${num(rep.accepted).toLocaleString('zh-CN')} 条` + (rep.rosterVersion ? `，名册版本 ${num(rep.rosterVersion)}` : '') + '。'));
      if (rows.length) out.append(rowTable(rows, rowsTestid));
      out.dataset.outcome = 'accepted';
      if (method === 'ImportRosterFile') refreshStats();
    } catch (e) {
      progress.hidden = true;
      out.dataset.outcome = 'rejected';
      if (e.code === 'unauthenticated') { failed($('#signin-error'), e); return; }
      const rows = (e.violations || []).map(rowOf);
      const head = errorLines(e)[0];
      const totals = badRowTotals(e);
      const more = totals && sent && totals.problems > rows.length;
      const total = more ? totals.problems : rows.length;
      const note = h('p', { class: 'status', testid: 'row-errors-note' },
        more ? `下表先列出前 ${rows.length} 处，正在取回全部 ${total.toLocaleString('zh-CN')} 处…` : null);
      out.replaceChildren(h('div', { class: 'alert', role: 'alert', testid: 'import-rejected' },
        h('strong', null, rows.length ? `文件被拒绝：${total.toLocaleString('zh-CN')} 处错误，见下表。` : `导入失败：${head}`),
        h('p', null, method === 'ImportRosterFile' ? '现有名册未改变' + (before ? `（仍是版本 ${before}）` : '') + '。' : '现有联络员名单未改变。'),
        rows.length ? null : h('p', null, errorLines(e).slice(1).join('；')), more ? note : null));
      if (rows.length) out.append(rowTable(rows, rowsTestid));
      if (more) {
        const check = method === 'ImportRosterFile' ? 'CheckRosterFile' : 'CheckLiaisonsFile';
        try {
          const all = await allRowErrors(check, sent);
          out.querySelector('.table-wrap').replaceWith(rowTable(all, rowsTestid));
          note.textContent = `下表列出全部 ${all.length.toLocaleString('zh-CN')} 处。`;
          out.dataset.rows = 'all';
        } catch (err) {
          note.textContent = `只列出前 ${rows.length} 处；取回其余的失败：${errorLines(err)[0]}`;
        }
      }
      if (method === 'ImportRosterFile') refreshStats();
    } finally {
      button.disabled = false;
    }
  });
}

importer($('#import-form'), $('#roster-file'), $('#roster-format'), $('#import'), $('#import-progress'), $('#import-result'), 'ImportRosterFile', '名册', 'row-errors');
importer($('#liaison-form'), $('#liaison-file'), $('#liaison-format'), $('#import-liaisons'), $('#liaison-progress'), $('#liaison-result'), 'ImportLiaisonsFile', '联络员', 'liaison-row-errors');

// ---------------------------------------------------------------- tickets
const ORDER = ['TICKET_STATE_UNROUTABLE', 'TICKET_STATE_QUEUED', 'TICKET_STATE_OFFERED', 'TICKET_STATE_ACCEPTED', 'TICKET_STATE_RESOLVED', 'TICKET_STATE_CANCELLED'];
let shown = [];
let nextToken = '';

const created = (t) => (t.createdAt ? Date.parse(t.createdAt) : 0);

async function loadTickets(more) {
  const state = $('#ticket-state-filter').value;
  const box = $('#tickets-error');
  try {
    let list;
    if (more) {
      const r = await call('ListTickets', { state: state || undefined, pageSize: 100, pageToken: nextToken });
      list = shown.concat(r.tickets || []);
      nextToken = r.nextPageToken || '';
    } else if (state) {
      const r = await call('ListTickets', { state, pageSize: 100 });
      list = r.tickets || [];
      nextToken = r.nextPageToken || '';
    } else {
      const [bad, all] = await Promise.all([
        call('ListTickets', { state: 'TICKET_STATE_UNROUTABLE', pageSize: 100 }),
        call('ListTickets', { pageSize: 100 }),
      ]);
      list = (bad.tickets || []).concat(all.tickets || []);
      nextToken = all.nextPageToken || '';
    }
    const seen = new Set();
    shown = list.filter((t) => !seen.has(t.id) && seen.add(t.id));
    shown.sort((a, b) => ORDER.indexOf(en('STATE', a.state)) - ORDER.indexOf(en('STATE', b.state)) || created(b) - created(a));
    showError(box, null);
    renderTickets();
  } catch (e) {
    failed(box, e);
  }
}

function renderTickets() {
  const counts = {};
  for (const t of shown) { const s = en('STATE', t.state); counts[s] = (counts[s] || 0) + 1; }
  $('#ticket-counts').replaceChildren(...ORDER.filter((s) => counts[s]).map((s) =>
    h('span', { class: 'tag' + (s === 'TICKET_STATE_UNROUTABLE' ? ' bad' : ''), 'data-state': s }, `${STATE_ZH[s]} ${counts[s]}`)));
  $('#tickets-body').replaceChildren(...(shown.length ? shown.map((t) => {
    const st = en('STATE', t.state);
    const a = t.assignee || {};
    return h('tr', { testid: 'ticket-row', 'data-state': st, 'data-ticket-id': t.id },
      h('td', null, h('span', { class: 'tag' + (st === 'TICKET_STATE_UNROUTABLE' ? ' bad' : '') }, STATE_ZH[st] || st), t.reason ? h('div', { class: 'muted' }, t.reason) : null),
      h('td', null, h('div', null, t.subject ? h('b', null, t.subject + ' ') : null, (t.text || '').slice(0, 80)), h('div', { class: 'mono muted' }, t.id)),
      h('td', null, a.name ? `${a.name}（${a.id}）` : '—'),
      h('td', null, fmtTime(created(t))));
  }) : [h('tr', null, h('td', { colspan: '4', class: 'muted' }, '没有问题单。'))]));
  $('#tickets-more').hidden = !nextToken;
}

$('#ticket-state-filter').addEventListener('change', () => loadTickets(false));
$('#tickets-refresh').addEventListener('click', () => loadTickets(false));
$('#tickets-more').addEventListener('click', () => loadTickets(true));

// ---------------------------------------------------------------- deliveries
const DELIVERY_ZH = { DELIVERY_STATE_PENDING: '等待重试', DELIVERY_STATE_FAILED: '已放弃', DELIVERY_STATE_DELIVERED: '已送达' };
const TYPE_ZH = {
  'ticket.offered': '派单', 'ticket.accepted': '已接单', 'ticket.resolved': '已答复',
  'ticket.escalated': '上报', 'ticket.queued': '排队', 'ticket.unroutable': '无人能接',
};

async function loadDeliveries() {
  const box = $('#deliveries-error');
  try {
    const [failedList, pending] = await Promise.all([
      call('ListDeliveries', { state: 'DELIVERY_STATE_FAILED', pageSize: 100 }),
      call('ListDeliveries', { state: 'DELIVERY_STATE_PENDING', pageSize: 100 }),
    ]);
    showError(box, null);
    renderEndpoints(failedList.endpoints || []);
    // Only pending ones that already failed once: the rest are on their way.
    const waiting = (pending.deliveries || []).filter((d) => (d.attempts || 0) > 0);
    renderDeliveries((failedList.deliveries || []).concat(waiting));
  } catch (e) {
    failed(box, e);
  }
}

function renderEndpoints(endpoints) {
  $('#endpoints').replaceChildren(...(endpoints.length ? endpoints.map((e) => {
    const bad = e.disabled || num(e.failed) > 0;
    return h('div', { class: 'row', testid: 'endpoint', 'data-endpoint': e.name, 'data-disabled': String(!!e.disabled) },
      h('span', { class: 'tag' + (bad ? ' bad' : '') }, e.disabled ? '已停用（对方返回 410）'
        : e.configured === false ? '已不在配置中' : bad ? '有发送失败' : '正常'),
      h('div', { class: 'grow' }, h('b', null, e.name), ' ', h('span', { class: 'mono muted' }, e.url || '')),
      h('span', { class: 'muted' }, `待发 ${num(e.pending)} · 已送达 ${num(e.delivered)} · 失败 ${num(e.failed)}`),
      e.disabled || num(e.failed) > 0
        ? h('button', { type: 'button', testid: 'retry-endpoint', onclick: () => retry(e.name, '') }, e.disabled ? '重新启用并重发' : '全部重发')
        : null);
  }) : [h('p', { class: 'muted' }, '未配置消息网关（[[notify.webhooks]]）。')]));
}

function renderDeliveries(list) {
  $('#deliveries-body').replaceChildren(...(list.length ? list.map((d) => {
    const st = en('DELIVERY', d.state);
    return h('tr', { testid: 'delivery-row', 'data-state': st, 'data-delivery-id': d.id },
      h('td', null, h('span', { class: 'tag' + (st === 'DELIVERY_STATE_FAILED' ? ' bad' : '') }, DELIVERY_ZH[st] || st),
        h('div', { class: 'muted' }, `已尝试 ${d.attempts || 0} 次`)),
      h('td', null, h('div', null, `${TYPE_ZH[d.type] || d.type} → ${d.endpoint}`), h('div', { class: 'mono muted' }, `${d.id} · ${d.ticketId}`)),
      h('td', { class: 'break', 'data-label': '最近错误', testid: 'delivery-error' }, d.lastError || '—'),
      st === 'DELIVERY_STATE_FAILED'
        ? h('td', null, h('button', { type: 'button', testid: 'retry-delivery', onclick: () => retry(d.endpoint, d.id) }, '重发'))
        : h('td', { 'data-label': '下次重试' }, fmtTime(num(d.nextAttemptAtMs))));
  }) : [h('tr', null, h('td', { colspan: '4', class: 'muted' }, '没有失败的通知。'))]));
}

async function retry(endpoint, id) {
  const box = $('#deliveries-error');
  try {
    const r = await call('RetryDelivery', { endpoint, id: id || undefined });
    showError(box, null);
    say($('#deliveries-status'), `已重新排队 ${num(r.retried)} 条`);
    loadDeliveries();
  } catch (e) {
    failed(box, e);
  }
}

$('#deliveries-refresh').addEventListener('click', () => loadDeliveries());

// ---------------------------------------------------------------- tokens
$('#token-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const id = $('#talent-id').value.trim();
  const days = Math.round(Number($('#ttl-days').value) || 30);
  const box = $('#token-error');
  if (!id) { showError(box, '请填写人员编号。'); $('#talent-id').focus(); return; }
  if (days < 1 || days > 365) { showError(box, '有效天数应在 1 到 365 之间。'); $('#ttl-days').focus(); return; }
  $('#issue-token').disabled = true;
  try {
    const r = await call('IssueResponderToken', { talentId: id, ttlSeconds: String(days * 86400) });
    showError(box, null);
    $('#token-out').hidden = false;
    $('#issued-token').value = r.token || '';
    $('#token-meta').textContent = `${id} · ${r.role === 'liaison' ? '联络员（只读）' : '专家'} · 有效至 ${fmtTime(num(r.expiresAtMs))}`;
    say($('#copy-status'), '');
    $('#issued-token').focus();
    $('#issued-token').select();
  } catch (e) {
    $('#token-out').hidden = true;
    failed(box, e);
  } finally {
    $('#issue-token').disabled = false;
  }
});

$('#copy-token').addEventListener('click', async () => {
  const ta = $('#issued-token');
  try {
    await navigator.clipboard.writeText(ta.value);
    say($('#copy-status'), '已复制');
  } catch {
    ta.focus();
    ta.select();
    say($('#copy-status'), document.execCommand && document.execCommand('copy') ? '已复制' : '请长按或按 Ctrl+C 复制');
  }
});

// ---------------------------------------------------------------- figures
// Per-responder figures (RosterService.ResponderFigures), sorted in the
// browser by the column whose header was clicked; below them the
// subtotals per tier and per county (the server sums them: medians over
// the group's own times), each group sorted by the same column.
const DAY_MS = 86400000;
const dur = (ms) => {
  const s = Math.floor(num(ms) / 1000);
  if (!num(ms)) return '—';
  if (s < 1) return '不到 1 秒';
  if (s < 60) return `${s} 秒`;
  if (s < 3600) return `${Math.floor(s / 60)} 分 ${s % 60} 秒`;
  return `${Math.floor(s / 3600)} 小时 ${Math.floor((s % 3600) / 60)} 分`;
};
const pct = (f) => (f.offers ? `${Math.round(num(f.declinedOrLapsedShare) * 100)}%` : '—');
// [key, header, value for sorting, cell text]
const FIGURE_COLS = [
  ['name', '专家', (f) => f.name || f.talentId, (f) => (f.name ? `${f.name}（${f.talentId}）` : f.talentId)],
  ['tier', '层级', (f) => en('TIER', f.tier), (f) => TIER_ZH[en('TIER', f.tier)] || '—'],
  ['county', '县区', (f) => f.county || '', (f) => f.county || '—'],
  ['answered', '答复数', (f) => num(f.answered), (f) => String(num(f.answered))],
  ['offers', '派单数', (f) => num(f.offers), (f) => String(num(f.offers))],
  ['accept', '接单用时（中位）', (f) => (num(f.accepted) ? num(f.medianAcceptMs) : Infinity), (f) => dur(f.medianAcceptMs)],
  ['resolve', '答复用时（中位）', (f) => (num(f.answered) ? num(f.medianResolveMs) : Infinity), (f) => dur(f.medianResolveMs)],
  ['share', '婉拒或超时', (f) => (num(f.offers) ? num(f.declinedOrLapsedShare) : -1), pct],
  ['rating', '平均评分', (f) => (num(f.ratings) ? num(f.meanRating) : -1), (f) => (num(f.ratings) ? num(f.meanRating).toFixed(2) : '—')],
  ['ratings', '评价数', (f) => num(f.ratings), (f) => String(num(f.ratings))],
];
let figures = [];
let subtotals = { tier: [], county: [] };
let figureSort = { key: 'answered', dir: -1 };

async function loadFigures() {
  const box = $('#figures-error');
  const days = Number($('#figures-days').value);
  try {
    const r = await call('ResponderFigures', {
      tier: $('#figures-tier').value || undefined,
      county: $('#figures-county').value || undefined,
      fromMs: days ? String(Date.now() - days * DAY_MS) : undefined,
    });
    figures = r.figures || [];
    subtotals = { tier: r.byTier || [], county: r.byCounty || [] };
    showError(box, null);
    renderFigures();
  } catch (e) {
    failed(box, e);
  }
  if ($('#figures-county').options.length === 1) {
    try {
      const d = await unary('MatchService', 'ListDivisions', {});
      $('#figures-county').append(...(d.divisions || []).map((c) => h('option', { value: c.code.slice(0, 6) }, c.name)));
    } catch { /* the filter stays at 全部 */ }
  }
}

// A subtotal's label in the first column: which group, how many people.
const subtotalName = (kind, f) => {
  const group = kind === 'tier' ? (TIER_ZH[en('TIER', f.tier)] || '已离开名册') : (f.county || '已离开名册');
  return `小计：${group}（${num(f.responders)} 人）`;
};
const SUBTOTAL_HEAD = { tier: '按层级小计', county: '按县区小计' };

function renderFigures() {
  const col = FIGURE_COLS.find((c) => c[0] === figureSort.key);
  const key = (f) => (figureSort.key === 'name' && f.label ? f.label : col[2](f));
  const order = (rows, tie) => rows.slice().sort((a, b) => {
    const x = key(a), y = key(b);
    return (x < y ? -1 : x > y ? 1 : 0) * figureSort.dir || String(tie(a)).localeCompare(String(tie(b)));
  });
  const sorted = order(figures, (f) => f.talentId);
  const cells = (f, name) => FIGURE_COLS.map(([k, , , text], i) =>
    h('td', { class: i > 2 ? 'n' : null, 'data-col': k }, i === 0 && name ? name : text(f)));
  $('#figures-head').replaceChildren(...FIGURE_COLS.map(([key, label]) => {
    const on = key === figureSort.key;
    return h('th', { scope: 'col', 'aria-sort': on ? (figureSort.dir > 0 ? 'ascending' : 'descending') : 'none' },
      h('button', { type: 'button', testid: 'figures-sort-' + key, onclick: () => sortFigures(key) }, label + (on ? (figureSort.dir > 0 ? ' ▲' : ' ▼') : '')));
  }));
  const rows = sorted.length ? sorted.map((f) => h('tr', { testid: 'figure-row', 'data-talent-id': f.talentId }, ...cells(f)))
    : [h('tr', null, h('td', { colspan: String(FIGURE_COLS.length), class: 'muted' }, '这段时间没有派单记录。'))];
  for (const kind of ['tier', 'county']) {
    const groups = subtotals[kind].map((f) => ({ ...f, label: subtotalName(kind, f) }));
    if (!groups.length) continue;
    rows.push(h('tr', { class: 'subtotal-head', testid: 'figure-subtotal-head' },
      h('th', { scope: 'rowgroup', colspan: String(FIGURE_COLS.length) }, h('span', null, SUBTOTAL_HEAD[kind]))));
    rows.push(...order(groups, (f) => f.label).map((f) => h('tr',
      { class: 'subtotal', testid: 'figure-subtotal-row', 'data-group': kind, 'data-key': kind === 'tier' ? en('TIER', f.tier) : (f.countyCode || '') },
      ...cells(f, f.label))));
  }
  $('#figures-body').replaceChildren(...rows);
}

function sortFigures(key) {
  figureSort = { key, dir: figureSort.key === key ? -figureSort.dir : (key === 'name' || key === 'tier' || key === 'county' ? 1 : -1) };
  renderFigures();
}

$('#figures-form').addEventListener('submit', (ev) => { ev.preventDefault(); loadFigures(); });

// ---------------------------------------------------------------- start
const saved = load(sessionStorage, TOKEN_KEY, '');
if (saved) { token = saved; enter(null); }
else $('#admin-token').focus();
