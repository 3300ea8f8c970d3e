// The farmer's page: ask, see who can help, submit, follow the ticket live.
import { unary, serverStream, b64ToBytes } from './connect.js';
import {
  $, h, TIER_ZH, CORPS_ZH, STATE_ZH, EVENT_ZH, OPEN_STATES, en, num, fmtTime, fmtKm,
  showError, say, load, save, keepStreaming, newKey, starText,
} from './ui.js';

const MAX_CHARS = 4000;
const TICKETS_KEY = 'xwn.tickets';
const PENDING_KEY = 'xwn.pendingSubmit';

const text = $('#problem-text');
const counter = $('#text-counter');
const sel = { county: $('#county'), town: $('#town'), village: $('#village') };
const whereStatus = $('#where-status');
const askError = $('#ask-error');
const matchBtn = $('#match');
const submitBtn = $('#submit');
const contact = $('#contact');

let point = null; // {lat, lon} when located by the phone
const chars = (s) => Array.from(s).length; // characters as typed (code points)

// ---------------------------------------------------------------- counter
function updateCounter() {
  const n = chars(text.value);
  counter.textContent = n > MAX_CHARS ? `${n} / ${MAX_CHARS} 字，超出 ${n - MAX_CHARS} 字` : `${n} / ${MAX_CHARS} 字`;
  counter.classList.toggle('over', n > MAX_CHARS);
  text.setAttribute('aria-invalid', n > MAX_CHARS ? 'true' : 'false');
}
text.addEventListener('input', updateCounter);

// ---------------------------------------------------------------- where
const divCache = new Map();
async function divisions(parent) {
  if (divCache.has(parent)) return divCache.get(parent);
  const key = 'xwn.div.' + (parent || 'city');
  let list = load(localStorage, key, null);
  if (!list) {
    const r = await unary('MatchService', 'ListDivisions', { parentCode: parent });
    list = (r.divisions || []).map((d) => ({ code: d.code, name: d.name }));
    save(localStorage, key, list);
  }
  divCache.set(parent, list);
  return list;
}

function fill(select, list, emptyLabel) {
  select.replaceChildren(h('option', { value: '' }, emptyLabel), ...list.map((d) => h('option', { value: d.code }, d.name)));
  select.disabled = !list.length;
}

function reset(select, label) {
  select.replaceChildren(h('option', { value: '' }, label));
  select.disabled = true;
}

async function loadLevel(parent, select, emptyLabel) {
  select.replaceChildren(h('option', { value: '' }, '正在加载…'));
  select.disabled = true;
  try {
    fill(select, await divisions(parent), emptyLabel);
    say(whereStatus, '');
  } catch (e) {
    reset(select, '加载失败');
    whereStatus.replaceChildren('地区列表没加载出来。', h('button', { type: 'button', testid: 'retry-divisions', onclick: () => loadLevel(parent, select, emptyLabel) }, '重试'));
  }
}

sel.county.addEventListener('change', () => {
  point = null;
  reset(sel.village, '先选镇');
  if (sel.county.value) loadLevel(sel.county.value, sel.town, '不选（全县）');
  else reset(sel.town, '先选县');
  whereChanged();
});
sel.town.addEventListener('change', () => {
  point = null;
  if (sel.town.value) loadLevel(sel.town.value, sel.village, '不选（全镇）');
  else reset(sel.village, '先选镇');
  whereChanged();
});
sel.village.addEventListener('change', whereChanged);

function whereChanged() {
  if (!point) say(whereStatus, '');
}

function location() {
  if (point) return { point };
  const code = sel.village.value || sel.town.value || sel.county.value;
  return code ? { divisionCode: code } : null;
}

$('#locate').addEventListener('click', () => {
  if (!navigator.geolocation || !window.isSecureContext) {
    say(whereStatus, '这个网页不能定位，请在上面选县、镇、村。');
    return;
  }
  say(whereStatus, '正在定位…');
  navigator.geolocation.getCurrentPosition(
    (p) => {
      point = { lat: Math.round(p.coords.latitude * 1e5) / 1e5, lon: Math.round(p.coords.longitude * 1e5) / 1e5 };
      sel.county.value = '';
      reset(sel.town, '先选县');
      reset(sel.village, '先选镇');
      say(whereStatus, `已定位：北纬 ${point.lat.toFixed(3)}，东经 ${point.lon.toFixed(3)}（约 ${Math.round(p.coords.accuracy)} 米内）`);
    },
    (e) => {
      say(whereStatus, e.code === 1 ? '没有允许定位。请在上面选县、镇、村。' : '定位失败，请在上面选县、镇、村。');
    },
    { enableHighAccuracy: false, timeout: 15000, maximumAge: 600000 },
  );
});

// Checks the form locally, naming what is missing; returns the request or null.
function request(errorBox) {
  const t = text.value;
  const problems = [];
  if (!t.trim()) problems.push('问题描述：请写几句话说说是什么问题');
  else if (chars(t) > MAX_CHARS) problems.push(`问题描述：有 ${chars(t)} 字，最多 ${MAX_CHARS} 字`);
  const loc = location();
  if (!loc) problems.push('位置：请选择县（可再选镇、村），或点“用我现在的位置”');
  if (problems.length) {
    showError(errorBox, { code: 'invalid_argument', violations: problems.map((p) => ({ field: p.split('：')[0], description: p.split('：')[1] })) });
    (!t.trim() || chars(t) > MAX_CHARS ? text : sel.county).focus();
    return null;
  }
  showError(errorBox, null);
  return { text: t, location: loc };
}

// ---------------------------------------------------------------- match
$('#ask-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const req = request(askError);
  if (!req) return;
  matchBtn.disabled = true;
  matchBtn.textContent = '正在找…';
  try {
    const r = await unary('MatchService', 'MatchProblem', { ...req, limit: 5 });
    showMatch(r);
  } catch (e) {
    showError(askError, e);
  } finally {
    matchBtn.disabled = false;
    matchBtn.textContent = '看看谁能帮忙';
  }
});

function showMatch(r) {
  const result = $('#result');
  result.hidden = false;
  const subject = r.subject || '';
  const corps = en('CORPS', r.corps);
  $('#subject').textContent = subject || '没看出来';
  $('#subject').dataset.subject = subject;
  $('#corps').textContent = CORPS_ZH[corps] ? CORPS_ZH[corps] + '专家服务团' : '';
  $('#corps').hidden = !CORPS_ZH[corps];
  $('#corps').dataset.corps = corps;
  const list = r.candidates || [];
  const note = $('#note');
  const a = r.analysis || {};
  // A problem that names no crop or animal: say what to add; submitted as
  // it is, it goes to the nearest county/town staff first.
  const missing = $('#missing');
  const prompt = (a.missing && a.missing.prompt) || '';
  missing.hidden = !prompt;
  const examples = { animal: '猪、羊、鸡', crop: '苹果、小麦、黄瓜' }[a.missing && a.missing.what] || '苹果、小麦、猪';
  missing.textContent = prompt ? prompt + '（比如：' + examples + '）。不补充也可以直接提交，先由附近的县乡农技人员看。' : '';
  note.hidden = (list.length > 0 && a.agricultural !== false) || !!prompt;
  note.textContent = list.length
    ? '这个问题可能不是农业技术问题，提交后可能没人接。'
    : '暂时没找到能帮忙的人' + (a.note ? '：' + a.note : '。') + ' 可以把问题写得更具体些（种的什么、什么症状）。';
  $('#candidates').replaceChildren(...list.map((c) => {
    const t = c.talent || {};
    const tier = en('TIER', t.tier);
    return h('li', { testid: 'candidate' },
      h('span', { class: 'name' }, t.name || t.id || ''),
      h('span', { class: 'tag', testid: 'candidate-tier' }, TIER_ZH[tier] || ''),
      h('span', { class: 'tag warn', testid: 'candidate-distance' }, fmtKm(num(c.distanceKm))),
      h('div', { class: 'muted' }, [t.countyName, t.divisionName].filter(Boolean).join(' · ')),
      c.reason ? h('div', { testid: 'candidate-reason' }, c.reason) : null);
  }));
  showSimilar(r.similar || []);
  result.scrollIntoView({ behavior: 'smooth', block: 'start' });
  $('#result-h').focus({ preventScroll: true });
}

// Solved problems like this one (only those similar enough come back).
function showSimilar(list) {
  $('#similar').hidden = !list.length;
  $('#similar-list').replaceChildren(...list.map((hit) => {
    const e = hit.entry || {};
    const tier = en('TIER', e.tier);
    const when = e.resolvedAt ? fmtTime(Date.parse(e.resolvedAt)) : '';
    return h('li', { testid: 'similar-item' },
      h('div', { testid: 'similar-problem' }, '问：' + (e.text || '')),
      h('div', { class: 'answer', testid: 'similar-answer' }, '答：' + (e.answer || '')),
      h('div', { class: 'muted' }, [TIER_ZH[tier], e.countyName, when].filter(Boolean).join(' · ')));
  }));
}
$('#result-h').tabIndex = -1;

// ---------------------------------------------------------------- photos
// Up to six photos, each shrunk on the phone (long side 1600 px, JPEG)
// before it is uploaded, one per call; the ids go with the submission.
const MAX_PHOTOS = 6;
const LONG_SIDE = 1600;
const photoList = $('#photo-list');
const photoStatus = $('#photo-status');
let attached = []; // { id, url }

async function shrink(file) {
  const bitmap = await createImageBitmap(file, { imageOrientation: 'from-image' });
  const scale = Math.min(1, LONG_SIDE / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement('canvas');
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  canvas.getContext('2d').drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  return new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', 0.85));
}

function bytesToB64(bytes) {
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

function renderPhotos() {
  photoList.replaceChildren(...attached.map((p, i) => {
    const remove = h('button', { type: 'button', class: 'small', 'data-testid': 'remove-photo', 'aria-label': `删除第 ${i + 1} 张照片` }, '删除');
    remove.addEventListener('click', () => {
      URL.revokeObjectURL(p.url);
      attached = attached.filter((x) => x !== p);
      renderPhotos();
    });
    return h('li', null, h('img', { src: p.url, alt: `照片 ${i + 1}`, 'data-testid': 'photo-thumb' }), remove);
  }));
  say(photoStatus, attached.length ? `已添加 ${attached.length} 张` : '');
}

$('#photo-input').addEventListener('change', async (ev) => {
  const files = [...ev.target.files];
  ev.target.value = '';
  const err = $('#submit-error');
  showError(err, null);
  for (const file of files) {
    if (attached.length >= MAX_PHOTOS) { say(photoStatus, `最多 ${MAX_PHOTOS} 张`); break; }
    say(photoStatus, '正在缩小并上传…');
    try {
      const blob = (await shrink(file).catch(() => null)) || file;
      const data = bytesToB64(new Uint8Array(await blob.arrayBuffer()));
      const r = await unary('PhotoService', 'UploadPhoto', { data, idempotencyKey: newKey() }, { timeoutMs: 60000 });
      if (!attached.some((p) => p.id === r.photoId)) attached.push({ id: r.photoId, url: URL.createObjectURL(blob) });
    } catch (e) {
      showError(err, e);
    }
  }
  renderPhotos();
});

// ---------------------------------------------------------------- submit
submitBtn.addEventListener('click', async () => {
  if (submitBtn.disabled) return;
  const err = $('#submit-error');
  const req = request(err);
  if (!req) return;
  req.contact = contact.value.trim();
  req.photoIds = attached.map((p) => p.id);
  // One idempotency key per submission: the same content (a double tap, a
  // retry after a network error, a reload) reuses it, so it makes one ticket.
  const fp = JSON.stringify(req);
  let pending = load(sessionStorage, PENDING_KEY, null);
  if (!pending || pending.fp !== fp) pending = { fp, key: newKey() };
  save(sessionStorage, PENDING_KEY, pending);
  submitBtn.disabled = true;
  submitBtn.textContent = '正在提交…';
  try {
    const t = await unary('TicketService', 'SubmitProblem', { ...req, idempotencyKey: pending.key }, { timeoutMs: 20000 });
    const rec = remember(t, req.text);
    showError(err, null);
    for (const p of attached) URL.revokeObjectURL(p.url);
    attached = [];
    renderPhotos();
    openTicket(rec, t);
  } catch (e) {
    showError(err, e);
    if (['unavailable', 'deadline_exceeded', 'resource_exhausted'].includes(e.code)) {
      err.append(h('p', null, '请稍后再点“提交”，不会重复提交。'));
    }
  } finally {
    submitBtn.disabled = false;
    submitBtn.textContent = '提交问题，请人来帮';
  }
});

// ---------------------------------------------------------------- my tickets
const tickets = () => load(localStorage, TICKETS_KEY, []);

function remember(t, asked) {
  const list = tickets();
  let rec = list.find((x) => x.id === t.id);
  if (!rec) {
    rec = { id: t.id, secret: t.ticketSecret, text: (asked || t.text || '').slice(0, 80), at: Date.now() };
    list.unshift(rec);
  } else if (t.ticketSecret) rec.secret = t.ticketSecret;
  rec.state = en('STATE', t.state);
  save(localStorage, TICKETS_KEY, list.slice(0, 50));
  renderMine();
  return rec;
}

function updateRec(id, state) {
  const list = tickets();
  const rec = list.find((x) => x.id === id);
  if (rec && rec.state !== state) {
    rec.state = state;
    save(localStorage, TICKETS_KEY, list);
    renderMine();
  }
}

function renderMine() {
  const list = tickets();
  $('#mine-empty').hidden = list.length > 0;
  $('#my-tickets').replaceChildren(...list.map((rec) => {
    const st = rec.state || 'TICKET_STATE_UNSPECIFIED';
    const open = OPEN_STATES.includes(st);
    return h('li', { testid: 'my-ticket', 'data-ticket-id': rec.id, 'data-state': st },
      h('span', { class: 'what' }, rec.text || rec.id),
      h('span', { class: 'tag' + (open ? '' : st === 'TICKET_STATE_RESOLVED' ? '' : ' warn') }, STATE_ZH[st] || '未知'),
      h('span', { class: 'muted' }, fmtTime(rec.at)),
      h('button', { type: 'button', testid: 'open-ticket', onclick: () => openTicket(rec) }, '查看'),
      open ? null : h('button', { type: 'button', testid: 'forget-ticket', 'aria-label': '从列表移除：' + (rec.text || rec.id), onclick: () => forget(rec.id) }, '移除'));
  }));
}

function forget(id) {
  save(localStorage, TICKETS_KEY, tickets().filter((x) => x.id !== id));
  if (current && current.id === id) closeTicket();
  renderMine();
}

async function refreshMine() {
  const open = tickets().filter((r) => r.secret && (!r.state || OPEN_STATES.includes(r.state))).slice(0, 10);
  await Promise.all(open.map(async (rec) => {
    try {
      const t = await unary('TicketService', 'GetTicket', { ticketId: rec.id, ticketSecret: rec.secret });
      updateRec(rec.id, en('STATE', t.state));
    } catch { /* keep the last known state */ }
  }));
}

// ---------------------------------------------------------------- one ticket
let current = null; // {id, secret, watcher, seqs:Set, events:[]}

function closeTicket() {
  if (current && current.watcher) current.watcher.stop();
  current = null;
  $('#ticket').hidden = true;
}

function openTicket(rec, ticket) {
  if (current && current.id === rec.id && current.watcher) {
    if (ticket) renderTicket(ticket);
    $('#ticket').scrollIntoView({ block: 'start' });
    return;
  }
  closeTicket();
  current = { id: rec.id, secret: rec.secret, seqs: new Set(), events: [], state: rec.state };
  const me = current;
  $('#ticket').hidden = false;
  $('#ticket-photos').dataset.ticket = '';
  $('#ticket-id').textContent = rec.id;
  $('#timeline').replaceChildren();
  showError($('#ticket-error'), null);
  setState(rec.state || 'TICKET_STATE_UNSPECIFIED');
  $('#answer-box').hidden = true;
  $('#rate-box').hidden = true;
  $('#rated').hidden = true;
  $('#rate-comment').value = '';
  pickStars(0);
  showError($('#rate-error'), null);
  $('#ticket-who').textContent = '';
  $('#ticket-contact').textContent = '';
  if (ticket) renderTicket(ticket);
  $('#ticket').scrollIntoView({ behavior: 'smooth', block: 'start' });
  $('#ticket-h').tabIndex = -1;
  $('#ticket-h').focus({ preventScroll: true });
  const status = $('#watch-status');
  if (me.state && me.state !== 'TICKET_STATE_UNSPECIFIED' && !OPEN_STATES.includes(me.state)) {
    catchUp(me); // closed for good: read it once, no need to watch
    return;
  }
  me.watcher = keepStreaming(
    (signal, onOpen) => serverStream('TicketService', 'WatchTicket', { ticketId: me.id, ticketSecret: me.secret }, {
      signal,
      onOpen: () => { onOpen(); catchUp(me); },
      onMessage: (ev) => { if (current === me) onEvent(ev); },
    }),
    {
      done: () => !OPEN_STATES.includes(me.state),
      onStatus: (kind, info) => {
        if (current !== me) return;
        if (kind === 'live') say(status, '● 正在实时跟进');
        else if (kind === 'connecting') say(status, info ? '正在重新连接…' : '正在连接…');
        else if (kind === 'waiting') say(status, `连接断了，${Math.round(info / 1000)} 秒后自动重连`);
        else if (kind === 'failed') { say(status, ''); showError($('#ticket-error'), info); }
        else say(status, '');
      },
    },
  );
}

async function catchUp(me) {
  try {
    const t = await unary('TicketService', 'GetTicket', { ticketId: me.id, ticketSecret: me.secret });
    if (current === me) renderTicket(t);
  } catch (e) {
    if (current === me && e.code !== 'canceled') showError($('#ticket-error'), e);
  }
}

function setState(st) {
  const el = $('#ticket-state');
  el.textContent = STATE_ZH[st] || '未知';
  el.dataset.state = st;
  if (current) current.state = st;
  $('#cancel').hidden = !OPEN_STATES.includes(st);
  if (current) updateRec(current.id, st);
  if (current && current.watcher && !OPEN_STATES.includes(st)) {
    current.watcher.stop();
    say($('#watch-status'), '');
  }
}

function assignee(talent, st) {
  const who = $('#ticket-who');
  if (!talent || !talent.name || !['TICKET_STATE_OFFERED', 'TICKET_STATE_ACCEPTED', 'TICKET_STATE_RESOLVED'].includes(st)) {
    who.textContent = '';
    return;
  }
  const verb = st === 'TICKET_STATE_OFFERED' ? '已派给' : st === 'TICKET_STATE_ACCEPTED' ? '接单的是' : '答复的是';
  who.replaceChildren(`${verb} `, h('span', { class: 'name' }, talent.name), h('span', { class: 'tag' }, TIER_ZH[en('TIER', talent.tier)] || ''));
}

function addEvent(ev) {
  const seq = num(ev.seq);
  if (!current || current.seqs.has(seq)) return false;
  current.seqs.add(seq);
  current.events.push(ev);
  current.events.sort((a, b) => num(a.seq) - num(b.seq));
  $('#timeline').replaceChildren(...current.events.map((e) => {
    const kind = en('EVENT', e.kind);
    const who = e.talent && e.talent.name ? ' · ' + e.talent.name : '';
    return h('li', { 'data-kind': kind }, `${fmtTime(num(e.atMs))} ${EVENT_ZH[kind] || kind}${who}`, e.reason ? h('div', { class: 'muted' }, e.reason) : null);
  }));
  return true;
}

function onEvent(ev) {
  const fresh = addEvent(ev);
  const st = en('STATE', ev.state);
  if (!current.events.length || num(ev.seq) >= num(current.events[current.events.length - 1].seq)) {
    setState(st);
    assignee(ev.talent, st);
  }
  // The event carries no answer, contact or rating: read the ticket for them.
  if (fresh && st === 'TICKET_STATE_RESOLVED') catchUp(current);
}

function renderTicket(t) {
  const st = en('STATE', t.state);
  for (const e of t.history || []) addEvent(e);
  setState(st);
  assignee(t.assignee, st);
  const reason = $('#ticket-reason');
  reason.hidden = !t.reason || !['TICKET_STATE_QUEUED', 'TICKET_STATE_UNROUTABLE'].includes(st);
  reason.textContent = t.reason || '';
  $('#answer-box').hidden = !t.answer;
  $('#ticket-answer').textContent = t.answer || '';
  $('#ticket-contact').textContent = t.contact ? `您留的联系方式：${t.contact}（专家接单后才能看到）` : '';
  showRating(st, t.rating);
  showTicketPhotos(current, t.photoIds || []);
}

// The ticket's thumbnails, read with the ticket secret (GetPhoto) into
// object URLs; a tap opens the whole photo.
async function showTicketPhotos(me, ids) {
  const list = $('#ticket-photos');
  if (!me || list.dataset.ticket === me.id) return;
  list.dataset.ticket = me.id;
  list.replaceChildren();
  list.hidden = !ids.length;
  for (const id of ids) {
    try {
      const p = await unary('PhotoService', 'GetPhoto', { ticketId: me.id, photoId: id, ticketSecret: me.secret, thumbnail: true });
      if (current !== me) return;
      const url = URL.createObjectURL(new Blob([b64ToBytes(p.data)], { type: p.contentType }));
      const img = h('img', { src: url, alt: '问题照片', 'data-testid': 'ticket-photo' });
      img.addEventListener('click', async () => {
        const full = await unary('PhotoService', 'GetPhoto', { ticketId: me.id, photoId: id, ticketSecret: me.secret });
        window.open(URL.createObjectURL(new Blob([b64ToBytes(full.data)], { type: full.contentType })), '_blank');
      });
      list.append(h('li', null, img));
    } catch {
      list.append(h('li', { class: 'muted' }, '照片已删除'));
    }
  }
}

// ---------------------------------------------------------------- rating
// A resolved answer is rated once: 1 to 5 stars and an optional comment.
let stars = 0;
const starButtons = [...document.querySelectorAll('#rate-box [data-stars]')];
function pickStars(n) {
  stars = n;
  for (const b of starButtons) {
    const on = Number(b.dataset.stars) <= n;
    b.classList.toggle('on', on);
    b.setAttribute('aria-checked', Number(b.dataset.stars) === n ? 'true' : 'false');
  }
  if (n) showError($('#rate-error'), null);
}
for (const b of starButtons) b.addEventListener('click', () => pickStars(Number(b.dataset.stars)));

function showRating(st, rating) {
  const rated = !!(rating && num(rating.stars));
  $('#rate-box').hidden = st !== 'TICKET_STATE_RESOLVED' || rated;
  $('#rated').hidden = !rated;
  if (rated) {
    const n = num(rating.stars);
    $('#rated-stars').textContent = starText(n);
    $('#rated-stars').setAttribute('aria-label', `${n} 星`);
    $('#rated-stars').dataset.stars = String(n);
    $('#rated-comment').textContent = rating.comment || '';
  }
}

$('#rate-box').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  if (!current) return;
  const me = current;
  const box = $('#rate-error');
  const comment = $('#rate-comment').value.trim();
  if (!stars) { showError(box, '请先点星星打分：1 星没帮助，5 星很有帮助。'); starButtons[0].focus(); return; }
  if (chars(comment) > 500) { showError(box, `想说的话有 ${chars(comment)} 字，最多 500 字。`); return; }
  const btn = $('#rate-submit');
  btn.disabled = true;
  try {
    const t = await unary('TicketService', 'RateAnswer', { ticketId: me.id, ticketSecret: me.secret, stars, comment });
    showError(box, null);
    if (current === me) renderTicket(t);
  } catch (e) {
    // Rated already (from another phone, or a double tap): show that one.
    if (e.code === 'already_exists') catchUp(me);
    else showError(box, e);
  } finally {
    btn.disabled = false;
  }
});

$('#cancel').addEventListener('click', async () => {
  if (!current) return;
  const me = current;
  const btn = $('#cancel');
  btn.disabled = true;
  try {
    const t = await unary('TicketService', 'CancelTicket', { ticketId: me.id, ticketSecret: me.secret });
    if (current === me) renderTicket(t);
  } catch (e) {
    showError($('#ticket-error'), e);
  } finally {
    btn.disabled = false;
  }
});

$('#new-question').addEventListener('click', () => {
  closeTicket();
  text.value = '';
  updateCounter();
  $('#result').hidden = true;
  text.focus();
});

// ---------------------------------------------------------------- start
updateCounter();
loadLevel('', sel.county, '请选择');
renderMine();
refreshMine().then(() => {
  const open = tickets().find((r) => OPEN_STATES.includes(r.state));
  if (open && !current) openTicket(open);
});
