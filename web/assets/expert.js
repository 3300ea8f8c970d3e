// The responder's console: sign in with a token, set availability, take
// offers live, accept, decline, escalate, resolve. Opened from an offer's
// notification (`/expert#action=<token>`), it takes the token from the
// fragment, removes it from the address bar and shows that one offer.
import { unary, serverStream, b64ToBytes } from './connect.js';
import {
  $, h, CORPS_ZH, STATE_ZH, EVENT_ZH, TIER_ZH, en, num, fmtTime, fmtLeft, starText,
  showError, say, load, save, keepStreaming,
} from './ui.js';

const TOKEN_KEY = 'xwn.responderToken';
const AVAIL_KEY = 'xwn.availability';
const S = 'ResponderService';

let token = '';
let claims = null; // {sub, role, exp}
let watcher = null;
const items = new Map(); // ticket id -> {ticket, event, readOnly, el, shown}
const drafts = new Map(); // ticket id -> answer being written

// ---------------------------------------------------------------- sign-in
// The token's middle part is hex of its JSON claims; reading it needs no key.
function readClaims(tok) {
  try {
    const hex = tok.trim().split('.')[1] || '';
    if (!/^([0-9a-f]{2})+$/i.test(hex)) return null;
    const bytes = new Uint8Array(hex.match(/../g).map((x) => parseInt(x, 16)));
    const c = JSON.parse(new TextDecoder().decode(bytes));
    return c && typeof c.sub === 'string' ? c : null;
  } catch { return null; }
}

$('#signin-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const tok = $('#responder-token').value.trim();
  const box = $('#signin-error');
  if (!tok) { showError(box, '请填写接单令牌。'); $('#responder-token').focus(); return; }
  const c = readClaims(tok);
  if (c && c.role !== 'action' && num(c.exp) && num(c.exp) <= Date.now()) { showError(box, '这个令牌已经过期，请向管理员要一个新的。'); return; }
  showError(box, null);
  signIn(tok, c);
});

// An action link's token acts on one ticket only: no availability, no
// other tickets.
const isLink = () => !!claims && claims.role === 'action';

function signIn(tok, c) {
  token = tok;
  claims = c;
  save(sessionStorage, TOKEN_KEY, tok);
  $('#responder-token').value = '';
  $('#signin').hidden = true;
  $('#console').hidden = false;
  const link = isLink();
  document.body.dataset.mode = link ? 'link' : 'console';
  const role = link ? '通知链接' : claims && claims.role === 'liaison' ? '联络员（只看）' : '专家';
  $('#who').textContent = claims ? `${claims.sub} · ${role}${claims.exp && !link ? ' · 有效至 ' + fmtTime(num(claims.exp)) : ''}` : '已登录';
  $('#avail-h').textContent = link ? '这个问题派给了您' : '我现在';
  $('#link-note').hidden = !link;
  $('#avail-row').hidden = link;
  $('#avail-status').hidden = link;
  $('#offers-empty').textContent = link ? '正在读取这个问题…' : '暂时没有问题。在线时，新问题会自动出现在这里。';
  const readOnly = claims && claims.role === 'liaison';
  for (const b of availButtons()) b.disabled = readOnly;
  if (readOnly) say($('#avail-status'), '联络员只能查看本村的问题。');
  const last = load(sessionStorage, AVAIL_KEY, '');
  if (last && !link) markAvailability(last);
  startWatching();
  $('#avail-h').tabIndex = -1;
  $('#avail-h').focus();
}

// `#action=<token>`: the token of an offer's link, read once and removed
// from the address bar (and so from the history and any bookmark).
function takeLinkToken() {
  const m = /^#action=([^&]+)/.exec(location.hash);
  if (!m) return '';
  history.replaceState(null, '', location.pathname + location.search);
  try { return decodeURIComponent(m[1]).trim(); } catch { return ''; }
}

function signOut(message) {
  if (watcher) watcher.stop();
  watcher = null;
  token = '';
  claims = null;
  save(sessionStorage, TOKEN_KEY, null);
  save(sessionStorage, AVAIL_KEY, null);
  items.clear();
  $('#offers').replaceChildren();
  $('#done').replaceChildren();
  $('#who').textContent = '';
  $('#console').hidden = true;
  $('#signin').hidden = false;
  showError($('#signin-error'), message || null);
  $('#responder-token').focus();
}

$('#sign-out').addEventListener('click', async () => {
  // Going offline first, so no offer waits on a closed console.
  if (claims && claims.role === 'responder') {
    try { await unary(S, 'SetAvailability', { availability: 'AVAILABILITY_OFFLINE' }, { token, timeoutMs: 5000 }); } catch { /* signing out anyway */ }
  }
  signOut();
});

// ---------------------------------------------------------------- availability
const AVAIL_ZH = { AVAILABILITY_ONLINE: '在线：新问题会派给您', AVAILABILITY_AWAY: '暂时离开：不派新问题，手上的照常', AVAILABILITY_OFFLINE: '已下线：不派新问题' };
const availButtons = () => [$('#availability-online'), $('#availability-away'), $('#availability-offline')];

function markAvailability(v) {
  for (const b of availButtons()) b.setAttribute('aria-pressed', String(b.dataset.value === v));
  say($('#avail-status'), AVAIL_ZH[v] || '');
  document.body.dataset.availability = v;
}

for (const b of availButtons()) {
  b.addEventListener('click', async () => {
    const box = $('#avail-error');
    for (const x of availButtons()) x.disabled = true;
    try {
      const r = await unary(S, 'SetAvailability', { availability: b.dataset.value }, { token });
      const v = en('AVAIL', r.availability);
      markAvailability(v === 'AVAILABILITY_UNSPECIFIED' ? b.dataset.value : v);
      save(sessionStorage, AVAIL_KEY, b.dataset.value);
      showError(box, null);
    } catch (e) {
      showError(box, e);
      if (e.code === 'unauthenticated') signOut(e);
    } finally {
      for (const x of availButtons()) x.disabled = false;
    }
  });
}

// ---------------------------------------------------------------- the stream
let connects = 0;
let replay = null; // {before:Set, seen:Set, timer}

function startWatching() {
  connects = 0;
  const status = $('#stream-status');
  watcher = keepStreaming(
    (signal, onOpen) => serverStream(S, 'WatchAssignments', {}, {
      token,
      signal,
      onOpen: () => { onOpen(); beginReplay(); },
      onMessage: onAssignment,
    }),
    {
      onStatus: (kind, info, err) => {
        // A link whose ticket is no longer the responder's: nothing to wait for.
        if (kind === 'waiting' && isLink() && err && err.code === 'failed_precondition') {
          watcher.stop();
          say(status, '');
          say($('#offers-empty'), '这个问题已经不再等您处理了：已被别人接手、已结束或已超时。');
          return;
        }
        if (kind === 'live') say(status, '● 已连接，问题会实时出现');
        else if (kind === 'connecting') say(status, info ? '正在重新连接…' : '正在连接…');
        else if (kind === 'waiting') { endReplay(); say(status, `连接断了，${Math.round(info / 1000)} 秒后自动重连`); }
        else if (kind === 'failed') {
          say(status, '');
          if (info.code === 'unauthenticated' || info.code === 'permission_denied') signOut(info);
          else showError($('#avail-error'), info);
        }
      },
    },
  );
}

// What is pending is replayed on every connect; after a drop the
// difference with what was shown is what was missed.
function beginReplay() {
  connects += 1;
  replay = { before: new Set(items.keys()), seen: new Set(), timer: setTimeout(endReplay, 1500), again: connects > 1 };
}

function endReplay() {
  if (!replay) return;
  const r = replay;
  replay = null;
  clearTimeout(r.timer);
  if (!r.again) return;
  const gone = [...r.before].filter((id) => !r.seen.has(id));
  const fresh = [...r.seen].filter((id) => !r.before.has(id));
  for (const id of gone) retire(id, '断线期间已结束或改派');
  const box = $('#missed');
  if (!gone.length && !fresh.length) return;
  const parts = [];
  if (fresh.length) parts.push(`新来 ${fresh.length} 个问题`);
  if (gone.length) parts.push(`${gone.length} 个问题已结束或改派给别人`);
  box.replaceChildren(`刚才断线期间：${parts.join('，')}。`, h('button', { type: 'button', testid: 'missed-dismiss', onclick: () => { box.hidden = true; } }, '知道了'));
  box.hidden = false;
}

function onAssignment(a) {
  const t = a.ticket;
  if (!t || !t.id) return;
  if (a.replay && replay) replay.seen.add(t.id);
  else if (!a.replay) endReplay();
  if (a.event && en('EVENT', a.event.kind) === 'TICKET_EVENT_KIND_RATED') { rated(t, a.event); return; }
  apply(t, a.event, !!a.readOnly);
}

// The farmer rated an answer of ours: shown on that ticket in the done list.
function rated(t, event) {
  const n = num(event.stars);
  let li = $('#done').querySelector(`[data-ticket-id="${CSS.escape(t.id)}"]`);
  if (!li) {
    li = h('li', { testid: 'done-item', 'data-ticket-id': t.id }, h('span', { class: 'name' }, t.subject || '问题'), ' ', (t.text || '').slice(0, 40));
    $('#done').prepend(li);
  }
  for (const old of li.querySelectorAll('[data-testid^=done-rating]')) old.remove();
  li.append(h('span', { class: 'tag', testid: 'done-rating', 'data-stars': String(n), 'aria-label': `农户评价 ${n} 星` }, '农户评价 ' + starText(n)),
    event.reason ? h('div', { class: 'muted', testid: 'done-rating-comment' }, event.reason) : null);
  say($('#announce'), `农户给您的答复打了 ${n} 星`);
}

function mine(t, readOnly) {
  const st = en('STATE', t.state);
  if (readOnly) return ['TICKET_STATE_QUEUED', 'TICKET_STATE_OFFERED', 'TICKET_STATE_ACCEPTED'].includes(st);
  if (st !== 'TICKET_STATE_OFFERED' && st !== 'TICKET_STATE_ACCEPTED') return false;
  return !claims || !t.assignee || !t.assignee.id || t.assignee.id === claims.sub;
}

function apply(t, event, readOnly, why) {
  let it = items.get(t.id);
  if (!mine(t, readOnly)) {
    if (it) retire(t.id, why || outcome(t, event));
    return;
  }
  if (!it) {
    it = { readOnly, el: null, shown: '' };
    items.set(t.id, it);
    const st = en('STATE', t.state);
    if (st === 'TICKET_STATE_OFFERED' && !readOnly) {
      say($('#announce'), `新问题：${t.subject || ''} ${(t.text || '').slice(0, 40)}`);
    }
  }
  it.ticket = t;
  it.event = event || it.event;
  it.readOnly = readOnly;
  render(t.id);
}

function outcome(t, event) {
  const st = en('STATE', t.state);
  const kind = event ? en('EVENT', event.kind) : '';
  if (st === 'TICKET_STATE_RESOLVED') return '已答复';
  if (st === 'TICKET_STATE_CANCELLED') return '农户取消了';
  return EVENT_ZH[kind] || STATE_ZH[st] || '已转走';
}

function retire(id, why) {
  const it = items.get(id);
  if (!it) return;
  items.delete(id);
  drafts.delete(id);
  const hadFocus = it.el && it.el.contains(document.activeElement);
  if (it.el) it.el.remove();
  const t = it.ticket || {};
  $('#done').prepend(h('li', { testid: 'done-item', 'data-ticket-id': id }, h('span', { class: 'name' }, t.subject || '问题'), ' ', (t.text || '').slice(0, 40), h('span', { class: 'tag warn' }, why)));
  while ($('#done').children.length > 20) $('#done').lastChild.remove();
  counts();
  if (hadFocus) { $('#offers-h').tabIndex = -1; $('#offers-h').focus(); }
}

function counts() {
  const n = items.size;
  $('#offer-count').textContent = String(n);
  $('#offers-empty').hidden = n > 0;
  const offered = [...items.values()].filter((i) => en('STATE', i.ticket.state) === 'TICKET_STATE_OFFERED' && !i.readOnly).length;
  document.title = (offered ? `(${offered}) ` : '') + '兴渭农 · 专家接单';
}

// ---------------------------------------------------------------- cards
const divNames = new Map(); // parent code -> Map(code -> name)
async function childNames(parent) {
  if (!divNames.has(parent)) {
    divNames.set(parent, unary('MatchService', 'ListDivisions', { parentCode: parent })
      .then((r) => new Map((r.divisions || []).map((d) => [d.code, d.name])))
      .catch(() => { divNames.delete(parent); return new Map(); }));
  }
  return divNames.get(parent);
}
async function placeName(code) {
  if (!/^\d{12}$/.test(code)) return '';
  const county = code.slice(0, 6) + '000000', town = code.slice(0, 9) + '000';
  const names = [(await childNames('')).get(county)];
  if (town !== county) names.push((await childNames(county)).get(town));
  if (code !== town && code !== county) names.push((await childNames(town)).get(code));
  return names.filter(Boolean).join(' ');
}

// The farmer's photos: thumbnails read with this console's token
// (GetPhoto) into object URLs; a tap opens the whole photo.
async function showPhotos(id, ids, list) {
  list.hidden = !ids.length;
  const get = (photoId, thumbnail) => unary('PhotoService', 'GetPhoto', { ticketId: id, photoId, thumbnail }, { token })
    .then((p) => URL.createObjectURL(new Blob([b64ToBytes(p.data)], { type: p.contentType })));
  for (const photoId of ids) {
    try {
      const img = h('img', { src: await get(photoId, true), alt: '农户拍的照片', testid: 'offer-photo' });
      img.addEventListener('click', async () => window.open(await get(photoId, false), '_blank'));
      list.append(h('li', null, img));
    } catch {
      list.append(h('li', { class: 'muted' }, '照片看不了'));
    }
  }
}

function render(id) {
  const it = items.get(id);
  const t = it.ticket;
  const st = en('STATE', t.state);
  if (!it.el) {
    it.el = h('article', { class: 'offer', testid: 'offer', 'data-ticket-id': id, 'aria-labelledby': 'h-' + id },
      h('h3', { id: 'h-' + id }),
      h('p', { class: 'timer', testid: 'countdown', role: 'timer', hidden: true }),
      h('p', { class: 'pre', testid: 'offer-text' }),
      h('ul', { class: 'photos', testid: 'offer-photos', hidden: true }),
      h('p', { class: 'muted', testid: 'offer-place' }),
      h('div', { class: 'contact-box' }),
      h('div', { class: 'acts' }),
      h('div', { class: 'alert', role: 'alert', testid: 'offer-error', hidden: true }));
    $('#offers').append(it.el);
    showPhotos(id, t.photoIds || [], it.el.querySelector('[data-testid=offer-photos]'));
    const loc = t.location || {};
    const place = it.el.querySelector('[data-testid=offer-place]');
    if (loc.divisionCode) placeName(loc.divisionCode).then((n) => { place.textContent = '地点：' + (n || loc.divisionCode); });
    else if (loc.point) place.textContent = `地点：北纬 ${num(loc.point.lat).toFixed(3)}，东经 ${num(loc.point.lon).toFixed(3)}`;
  }
  const el = it.el;
  el.dataset.state = st;
  const corps = CORPS_ZH[en('CORPS', t.corps)];
  el.querySelector('h3').replaceChildren(...[t.subject || '问题', corps ? h('span', { class: 'tag' }, corps) : null,
    h('span', { class: 'tag' + (st === 'TICKET_STATE_OFFERED' ? ' warn' : ''), testid: 'offer-state' }, st === 'TICKET_STATE_OFFERED' ? '等您接单' : STATE_ZH[st]),
    TIER_ZH[en('TIER', t.tier)] ? h('span', { class: 'tag' }, TIER_ZH[en('TIER', t.tier)] + '及以上') : null].filter(Boolean));
  el.querySelector('[data-testid=offer-text]').textContent = t.text || '';
  const timer = el.querySelector('.timer');
  timer.dataset.deadline = String(num(t.offerDeadlineMs));
  timer.hidden = st !== 'TICKET_STATE_OFFERED' || !num(t.offerDeadlineMs);
  const cb = el.querySelector('.contact-box');
  cb.replaceChildren(...[t.contact && st === 'TICKET_STATE_ACCEPTED'
    ? h('p', null, '农户联系方式：', h('a', { class: 'contact', testid: 'contact', href: 'tel:' + t.contact.replace(/[^\d+]/g, '') }, t.contact))
    : st === 'TICKET_STATE_ACCEPTED' ? h('p', { class: 'muted' }, '农户没有留联系方式。') : null].filter(Boolean));
  if (it.shown !== st + it.readOnly) {
    it.shown = st + it.readOnly;
    actions(id, el.querySelector('.acts'), st, it.readOnly);
  }
  tick();
  counts();
}

let reasonList = 0;
function actions(id, box, st, readOnly) {
  const hadFocus = box.contains(document.activeElement);
  box.replaceChildren();
  if (readOnly) { box.append(h('p', { class: 'muted' }, '只读：由专家处理。')); return; }
  const rid = 'r-' + id, aid = 'a-' + id, eid = 'e-' + id;
  if (st === 'TICKET_STATE_OFFERED') {
    const reason = h('input', { type: 'text', id: rid, testid: 'decline-reason', maxlength: '500', list: 'reasons', placeholder: '例如：不在我的专长' });
    box.append(
      h('div', { class: 'row' }, h('button', { type: 'button', class: 'primary grow', testid: 'accept', onclick: (e) => act(id, e.target, 'AcceptAssignment', { ticketId: id }) }, '接单')),
      h('label', { for: rid }, '不接的理由'), reason,
      h('div', { class: 'row' }, h('button', { type: 'button', class: 'danger', testid: 'decline', onclick: (e) => act(id, e.target, 'DeclineAssignment', { ticketId: id, reason: reason.value.trim() }) }, '不接，转给别人')));
    if (!reasonList++) {
      document.body.append(h('datalist', { id: 'reasons' }, ['不在我的专长', '手上问题太多', '离得太远', '现在不方便'].map((v) => h('option', { value: v }))));
    }
  } else if (st === 'TICKET_STATE_ACCEPTED') {
    const answer = h('textarea', { id: aid, testid: 'answer-text', rows: '4', maxlength: '4000', oninput: (e) => drafts.set(id, e.target.value) });
    answer.value = drafts.get(id) || '';
    const share = h('input', { type: 'checkbox', id: 's-' + id, testid: 'share-answer' });
    box.append(h('label', { for: aid }, '答复农户（会显示在农户的手机上）'), answer,
      h('label', { for: 's-' + id, class: 'check' }, share, ' 公开这个解答，帮助遇到同样问题的农户（不含联系方式）'),
      h('div', { class: 'row' }, h('button', { type: 'button', class: 'primary grow', testid: 'resolve', onclick: (e) => {
        const text = answer.value.trim();
        if (!text) { showErr(id, '请先写答复。'); answer.focus(); return; }
        act(id, e.target, 'ResolveTicket', { ticketId: id, answer: text, shareable: share.checked });
      } }, '答复并完成')));
  } else return;
  const why = h('input', { type: 'text', id: eid, testid: 'escalate-reason', maxlength: '500', placeholder: '例如：需要上级专家看' });
  box.append(h('details', null, h('summary', null, '解决不了？转给上一级专家'),
    h('label', { for: eid }, '转上级的理由'), why,
    h('div', { class: 'row' }, h('button', { type: 'button', testid: 'escalate', onclick: (e) => act(id, e.target, 'EscalateTicket', { ticketId: id, reason: why.value.trim() }) }, '转给上一级'))));
  if (hadFocus) { const f = box.querySelector('textarea, button'); if (f) f.focus(); }
}

function showErr(id, err) {
  const it = items.get(id);
  if (it && it.el) showError(it.el.querySelector('[data-testid=offer-error]'), err);
}

async function act(id, button, method, message) {
  const it = items.get(id);
  if (!it) return;
  const buttons = it.el.querySelectorAll('button');
  buttons.forEach((b) => { b.disabled = true; });
  showErr(id, null);
  try {
    const t = await unary(S, method, message, { token });
    if (method === 'ResolveTicket') drafts.delete(id);
    apply(t, null, false, { DeclineAssignment: '已婉拒', EscalateTicket: '已转上一级', ResolveTicket: '已答复' }[method]);
    if (method === 'AcceptAssignment' && items.get(id)) {
      const ta = items.get(id).el.querySelector('[data-testid=answer-text]');
      if (ta) ta.focus();
    }
  } catch (e) {
    showErr(id, e);
    if (e.code === 'unauthenticated') signOut(e);
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

function tick() {
  const now = Date.now();
  for (const el of document.querySelectorAll('.offer .timer')) {
    const d = num(el.dataset.deadline);
    if (!d || el.hidden) continue;
    const left = d - now;
    el.textContent = left > 0 ? `剩余 ${fmtLeft(left)} 可接单` : '接单时间已到';
    el.classList.toggle('late', left < 60000);
  }
}
setInterval(tick, 1000);

// ---------------------------------------------------------------- start
const linked = takeLinkToken();
const saved = linked || load(sessionStorage, TOKEN_KEY, '');
if (saved) signIn(saved, readClaims(saved));
else $('#responder-token').focus();
