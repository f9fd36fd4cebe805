"""Server-rendered pages of ``exprsim serve``: plain HTML + a little inline JavaScript that
calls the JSON API. Nothing is loaded from outside the server (no CDN, no fonts)."""

from __future__ import annotations

import html
from typing import Any

from exprsim.wording import count

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222}
header{background:#263238;color:#fff;padding:.6em 1.2em;display:flex;flex-wrap:wrap;gap:.4em 1.4em;
align-items:center}
header a{color:#cfd8dc;text-decoration:none}header a:hover{color:#fff}
header b{font-size:1.15em;margin-right:1em}
header form.logout{margin-left:auto}
main{max-width:1100px;margin:1.2em auto;padding:0 1em}
.drop{border:2px dashed #90a4ae;border-radius:8px;padding:2.2em;text-align:center;color:#546e7a;
cursor:pointer}.drop.over{background:#eceff1}
.row{display:flex;flex-wrap:wrap;gap:10px;margin:.6em 0}
.card{border:1px solid #ddd;border-radius:6px;padding:6px;font-size:.8em;text-align:center}
.card img{display:block;border-radius:4px}
.photo{position:relative;display:inline-block;max-width:100%}
.photo img{max-width:100%;display:block}
.box{position:absolute;border:2px solid #00e676;cursor:pointer}.box:focus{outline:3px solid #2962ff}
.box span{position:absolute;top:-1.5em;left:0;background:#00e676;color:#000;font-size:.75em;
padding:0 4px;white-space:nowrap}
.err{color:#b71c1c}.meta{color:#666;font-size:.85em}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
header nav{display:contents}header a[aria-current]{color:#fff;text-decoration:underline}
progress{width:100%;height:1.2em}
table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ddd;padding:.2em .5em}
"""

_JS_COMMON = """
async function api(path, opts) {
  const r = await fetch(path, opts);
  if (r.status === 401) { location.href = '/login'; throw new Error('please log in again'); }
  let body = null;
  try { body = await r.json(); } catch (e) { body = {error: 'HTTP ' + r.status}; }
  if (!r.ok) throw new Error(body.error || ('HTTP ' + r.status));
  return body;
}
function pressable(e, label, action) {
  // a clickable element that the keyboard reaches too (Tab, then Enter or Space)
  e.setAttribute('tabindex', '0'); e.setAttribute('role', 'button'); e.setAttribute('aria-label', label);
  e.onclick = action;
  e.onkeydown = (k) => { if (k.key === 'Enter' || k.key === ' ') { k.preventDefault(); action(); } };
  return e;
}
function count(n, noun) {
  // n and noun, plural unless n is 1 (exprsim.wording.count)
  return n + ' ' + noun + (n === 1 ? '' : 's');
}
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const k of kids) e.append(k);
  return e;
}
function card(src, caption) {
  return el('div', {class: 'card'}, el('img', {src: src, width: 96, height: 96, alt: caption}), caption);
}
function dropzone(id, onfiles, accept, multiple) {
  const z = document.getElementById(id);
  const attrs = {type: 'file', style: 'display:none', 'aria-hidden': 'true', tabindex: '-1'};
  if (accept) attrs.accept = accept;
  if (multiple !== false) attrs.multiple = '';
  const input = el('input', attrs);
  z.after(input);
  pressable(z, z.textContent.trim(), () => input.click());
  // the value is cleared, so that picking the same file again is a new pick
  input.onchange = () => { const files = [...input.files]; input.value = ''; onfiles(files); };
  z.ondragover = (e) => { e.preventDefault(); z.classList.add('over'); };
  z.ondragleave = () => z.classList.remove('over');
  z.ondrop = (e) => { e.preventDefault(); z.classList.remove('over'); onfiles([...e.dataTransfer.files]); };
}
"""


#: the header's links: (page title, path)
_NAV = (("Photos", "/"), ("Album summary", "/summary"), ("Tags", "/tags"), ("Video", "/video"))


def _page(title: str, body: str, script: str = "") -> str:
    links = "".join(
        f'<a href="{path}"{" aria-current=page" if name == title else ""}>{name}</a>'
        for name, path in _NAV
    )
    nav = f'<header><b>exprsim</b><nav aria-label="pages">{links}</nav></header>'
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width,initial-scale=1'>"
        # no icon: browsers would ask for /favicon.ico (a 404 in every page's console)
        f"<link rel='icon' href='data:,'>"
        f"<title>{html.escape(title)} - exprsim</title><style>{_CSS}</style></head>"
        f"<body>{nav}<main><h1>{html.escape(title)}</h1>{body}</main>"
        f"<script>{_JS_COMMON}{script}</script></body></html>"
    )


#: the header's logout button (pages of a server with a token; ``POST /logout``)
_LOGOUT = "<form method='post' action='/logout' class='logout'><button>Log out</button></form>"


def with_logout(page: str) -> str:
    """``page`` with a "Log out" button at the end of its header."""
    return page.replace("</header>", _LOGOUT + "</header>", 1)


def login(error: str = "") -> str:
    # the error is tied to the field the focus lands in: a screen reader says it there
    msg = f"<p class='err' id='login-err' role='alert'>{html.escape(error)}</p>" if error else ""
    tied = " aria-describedby='login-err' aria-invalid='true'" if error else ""
    return _page(
        "Log in",
        f"{msg}<form method='post' action='/login'><label>Token "
        f"<input type='password' name='token' autofocus required{tied}></label> "
        "<button>Log in</button></form>",
    )


def not_found() -> str:
    """A browser's answer for an address the server has no page at."""
    return _page("Not found", "<p>There is no page at this address: see the links above.</p>")


def unavailable(error: str) -> str:
    """A page's answer when the server cannot serve it (the index gone, locked...)."""
    return _page("Unavailable", f"<p class='err'>{html.escape(error)}</p>")


def home(info: dict[str, Any]) -> str:
    """The Photos page; ``info``: :meth:`IndexInfo.to_dict` of the index (its keys are read
    by name, so a renamed key fails loudly instead of showing an empty index)."""
    stats = (
        f"<p class='meta'>Index: {count(int(info['faces']), 'face')} in "
        f"{count(int(info['files']), 'photo')}, model {html.escape(str(info['model']))}</p>"
    )
    body = (
        stats
        + """
<div id="drop" class="drop">Drop photos here (or click) to see their faces, emotions and the
nearest expressions in the index</div>
<label><input type="checkbox" id="keep"> also add the photos to the index</label>
<div id="results" aria-live="polite"></div>"""
    )
    script = """
dropzone('drop', async (files) => {
  const out = document.getElementById('results');
  for (const f of files) {
    const sec = el('section', {class: 'result'}, el('h2', {}, f.name));
    out.prepend(sec);
    const fd = new FormData(); fd.append('file', f);
    try {
      const res = await api('/api/faces', {method: 'POST', body: fd});
      const wrap = el('div', {class: 'photo'}, el('img', {src: URL.createObjectURL(f), alt: f.name}));
      sec.append(wrap, el('p', {class: 'meta'}, count(res.faces.length, 'face')));
      const hitsBox = el('div', {});
      res.faces.forEach((face, i) => {
        const [x1, y1, x2, y2] = face.box;
        const emo = face.emotion ? Object.entries(face.emotion).sort((a, b) => b[1] - a[1])[0] : null;
        const label = i + ': ' + (emo ? emo[0] + ' ' + emo[1].toFixed(2) : 'face') +
                      (face.quality.ok ? '' : ' (low quality)');
        const b = el('div', {class: 'box', title: 'search with this face', 'data-face': i,
          style: `left:${100 * x1 / res.width}%;top:${100 * y1 / res.height}%;` +
                 `width:${100 * (x2 - x1) / res.width}%;height:${100 * (y2 - y1) / res.height}%`},
          el('span', {}, label));
        pressable(b, 'face ' + label + ', search with this face', () => search(f, i, hitsBox));
        wrap.append(b);
      });
      sec.append(hitsBox);
      // no face named: the server takes the largest face that passes the quality check,
      // else the largest (faces.pipeline.usable_face, as the CLI and the Python API)
      if (res.faces.length) await search(f, null, hitsBox);
      if (document.getElementById('keep').checked) {
        const fd2 = new FormData(); fd2.append('file', f);
        const added = await api('/api/index', {method: 'POST', body: fd2});
        sec.append(el('p', {class: 'meta'}, added.skipped
          ? 'already in the index: not added again'
          : 'indexed: ' + count(added.added_faces, 'face')));
      }
    } catch (e) { sec.append(el('p', {class: 'err'}, e.message)); }
  }
});
async function search(file, face, box) {
  const fd = new FormData(); fd.append('file', file);
  box.replaceChildren(el('p', {class: 'meta'}, 'searching...'));
  try {
    const which = face === null ? '' : '&face=' + face;
    const res = await api('/api/search?k=12' + which, {method: 'POST', body: fd});
    const row = el('div', {class: 'row hits'});
    for (const h of res.hits) {
      const c = card(h.thumbnail, h.file + ' d=' + h.distance.toFixed(3));
      const t = el('button', {class: 'tagit', title: 'make this face a tag reference',
                              'aria-label': 'tag the face of ' + h.file}, 'tag');
      t.onclick = async () => {
        const name = prompt('Tag name for this expression');
        if (!name) return;
        const fd = new FormData(); fd.append('name', name);
        try { await api('/api/tags/from-face/' + h.face_id, {method: 'POST', body: fd}); t.textContent = name; }
        catch (e) { c.append(el('p', {class: 'err', role: 'alert'}, e.message)); }
      };
      c.append(el('br', {}), t);
      row.append(c);
    }
    box.replaceChildren(el('h3', {}, 'Nearest expressions (face ' + res.face + ')'), row);
  } catch (e) { box.replaceChildren(el('p', {class: 'err'}, e.message)); }
}
"""
    return _page("Photos", body, script)


def summary() -> str:
    body = """
<form id="form"><label>Clusters <input id="n" type="number" min="1" max="50" step="1" value="6"
required></label> <button id="go">Summarise the index</button></form>
<div id="out" aria-live="polite"></div>"""
    script = """
let asked = 0;  // the newest request: a slower, older answer is dropped
async function run() {
  const n = document.getElementById('n').value, out = document.getElementById('out');
  const mine = ++asked;
  if (!/^[0-9]+$/.test(n) || +n < 1 || +n > 50) {
    out.replaceChildren(el('p', {class: 'err', role: 'alert'}, 'Clusters: a whole number from 1 to 50'));
    return;
  }
  out.replaceChildren(el('p', {class: 'meta'}, 'clustering...'));
  try {
    const res = await api('/api/summary?n=' + n);
    if (mine !== asked) return;
    if (!res.clusters.length) { out.replaceChildren(el('p', {}, 'The index is empty.')); return; }
    const reps = el('div', {class: 'row reps'});
    for (const c of res.clusters) reps.append(card(c.thumbnail, '#' + c.cluster + ' (' + c.size + ')'));
    const parts = [el('h2', {}, 'One face per cluster'), reps];
    if (res.note) parts.unshift(el('p', {class: 'meta'}, res.note));  // fewer clusters, a sample
    for (const c of res.clusters) {
      const row = el('div', {class: 'row'});
      c.members.forEach((m, i) => row.append(el('img', {src: '/api/thumbs/' + m, width: 56, height: 56,
                                                  alt: (c.member_files || [])[i] || 'face ' + m})));
      parts.push(el('h3', {}, '#' + c.cluster), row);
    }
    if (res.faces >= 2) parts.push(el('h2', {}, 'Map'), el('img', {src: res.map, style: 'max-width:100%',
                                     alt: '2-D map of the faces, coloured by cluster'}));
    out.replaceChildren(...parts);
  } catch (e) { if (mine === asked) out.replaceChildren(el('p', {class: 'err', role: 'alert'}, e.message)); }
}
document.getElementById('form').onsubmit = (e) => { e.preventDefault(); run(); }; run();
"""
    return _page("Album summary", body, script)


def tags() -> str:
    body = """
<form id="add"><label>New tag <input name="name" required></label>
<label>from a photo <input type="file" name="file" required></label>
<label>face <input type="number" name="face" value="0" min="0" style="width:4em"></label>
<button>Add reference face</button></form>
<p id="err" class="err" role="alert"></p>
<div id="list"></div>
<p><label>Threshold <input id="th" type="range" min="0.01" max="2" step="any">
<output id="thv"></output></label> <span id="count" class="meta" aria-live="polite"></span></p>
<div id="faces" class="row"></div>"""
    script = """
let current = null, asked = 0;  // asked: the newest request (older answers are dropped)
function oops(message) { document.getElementById('err').textContent = message; }
async function refresh() {
  const res = await api('/api/tags');
  const th = document.getElementById('th');
  if (!th.dataset.set) { th.value = res.threshold; th.dataset.set = 1; }
  document.getElementById('thv').value = Number(th.value).toFixed(3);
  const names = [...new Set(res.references.map(r => r.name))];
  const list = el('div', {class: 'row'});
  if (!names.includes(current)) current = names.length ? names[0] : null;
  for (const n of names) {
    const b = el('button', {'data-tag': n, 'aria-pressed': String(n === current)}, n);
    b.onclick = () => {
      current = n;
      for (const o of list.querySelectorAll('[data-tag]')) o.setAttribute('aria-pressed', String(o === b));
      show();
    };
    const del = el('button', {title: 'delete the tag ' + n, 'aria-label': 'delete the tag ' + n}, 'delete');
    del.onclick = async () => {
      if (!confirm('Delete the tag ' + n + ' and its reference faces?')) return;
      try { await api('/api/tags/' + encodeURIComponent(n), {method: 'DELETE'}); if (current === n) current = null; oops(''); }
      catch (err) { oops(err.message); }
      refresh();
    };
    list.append(el('span', {}, b, del));
  }
  document.getElementById('list').replaceChildren(names.length ? list : el('p', {}, 'No tags yet.'));
  if (current) show();
}
async function show() {
  const th = document.getElementById('th').value, mine = ++asked;
  document.getElementById('thv').value = Number(th).toFixed(3);
  let res;
  try { res = await api('/api/tags/' + encodeURIComponent(current) + '/faces?threshold=' + th); }
  catch (err) { if (mine === asked) document.getElementById('count').textContent = err.message; return; }
  if (mine !== asked) return;
  const shown = res.shown < res.count ? ' (the nearest ' + res.shown + ' shown)' : '';
  document.getElementById('count').textContent = current + ': ' + count(res.count, 'face') + ' closer than ' + Number(th).toFixed(3) + shown;
  const row = document.getElementById('faces');
  row.replaceChildren(...res.faces.map(f => {
    const c = card(f.thumbnail, 'd=' + f.distance.toFixed(3));
    c.querySelector('img').alt = (f.file ? f.file + ', ' : '') + 'distance ' + f.distance.toFixed(3);
    return c;
  }));
}
// asked when the slider rests for a moment, not at every step of a drag
let resting = 0;
document.getElementById('th').oninput = (e) => {
  document.getElementById('thv').value = Number(e.target.value).toFixed(3);
  clearTimeout(resting);
  resting = setTimeout(() => { if (current) show(); }, 150);
};
document.getElementById('add').onsubmit = async (e) => {
  e.preventDefault();
  try { const t = await api('/api/tags', {method: 'POST', body: new FormData(e.target)}); current = t.name; oops(''); refresh(); }
  catch (err) { oops(err.message); }
};
refresh().catch(err => oops(err.message));
"""
    return _page("Tags", body, script)


def video(unavailable: str | None = None) -> str:
    """The video page; ``unavailable``: why this server cannot read videos (said at the top,
    before anything is uploaded)."""
    if unavailable:  # no drop zone: an upload would be sent whole, then refused
        body = f'<p class="err" role="alert">{html.escape(unavailable)}</p>'
        return _page("Video", body)
    body = """
<div id="drop" class="drop">Drop a video here (or click)</div>
<div id="job"></div>
<p id="said" class="sr" role="status"></p>"""
    script = """
// one job is followed at a time; its id is kept in the address (#id), so that a reload or a
// visit later follows it again
let following = 0;
// what a screen reader announces: the job's state when it changes, not every poll's count
function say(text) { const s = document.getElementById('said'); if (s.textContent !== text) s.textContent = text; }
function progressBar(name) { return el('progress', {max: 1, value: 0, 'aria-label': 'progress of ' + name}); }
function failed(bar, msg, text) {  // the error in place of the progress
  bar.remove(); msg.replaceWith(el('p', {class: 'err', role: 'alert'}, text));
}
async function follow(id, name) {
  const mine = ++following, box = document.getElementById('job');
  const bar = progressBar(name), msg = el('p', {class: 'meta'}, 'waiting...');
  box.replaceChildren(el('h2', {}, name), bar, msg);
  try {
    let job = await api('/api/jobs/' + id);
    box.firstChild.textContent = job.name || name;
    while (job.status === 'queued' || job.status === 'running') {
      if (job.total) { bar.max = job.total; bar.value = job.done; }
      msg.textContent = job.status + ': ' + job.done + (job.total ? ' / ' + job.total : '') + ' frames';
      say((job.name || name) + ': ' + job.status);
      await new Promise(r => setTimeout(r, 700));
      if (mine !== following) return;
      job = await api('/api/jobs/' + id);
    }
    if (mine !== following) return;
    if (job.status === 'failed') { failed(bar, msg, job.error); return; }
    bar.max = 1; bar.value = 1;
    msg.textContent = job.summary.frames + ' frames, ' + job.summary.faces + ' accepted faces, ' + job.summary.persons + (job.summary.persons === 1 ? ' person' : ' persons');
    say((job.name || name) + ': done, ' + msg.textContent);
    box.append(el('iframe', {src: job.report, title: 'report of ' + (job.name || name),
                             style: 'width:100%;height:80vh;border:1px solid #ddd'}));
  } catch (e) { if (mine === following) failed(bar, msg, e.message); }
}
dropzone('drop', async (files) => {
  const mine = ++following, box = document.getElementById('job');
  const bar = progressBar(files[0].name), msg = el('p', {class: 'meta'}, 'uploading...');
  say(files[0].name + ': uploading');
  const more = files.length > 1 ? el('p', {class: 'meta'}, 'one video at a time: ' + files[0].name + ' is taken') : '';
  box.replaceChildren(el('h2', {}, files[0].name), more, bar, msg);
  const fd = new FormData(); fd.append('file', files[0]);
  try {
    const job = await api('/api/videos', {method: 'POST', body: fd});
    if (mine !== following) return;
    history.replaceState(null, '', '#' + job.id);
    follow(job.id, files[0].name);
  } catch (e) {
    if (mine === following) failed(bar, msg, e.message);
  }
}, 'video/*', false);
const kept = location.hash.slice(1);
if (/^[0-9a-f]{16}$/.test(kept)) follow(kept, 'video');
"""
    return _page("Video", body, script)


def api_docs(schema: dict[str, Any]) -> str:
    """``/api/docs``: the JSON API's routes, read from its OpenAPI ``schema`` (a plain table:
    no Swagger UI, nothing loaded from outside the server)."""
    rows = []
    for path, operations in sorted(schema.get("paths", {}).items()):
        for method, op in operations.items():
            text = str(op.get("summary") or op.get("description") or "").strip()
            what = text.splitlines()[0] if text else ""
            rows.append(
                f"<tr><td>{html.escape(method.upper())}</td><td><code>{html.escape(path)}</code>"
                f"</td><td>{html.escape(what)}</td></tr>"
            )
    body = (
        "<p class='meta'>The full schema: <a href='/api/openapi.json'>/api/openapi.json</a>. "
        "Every <code>GET</code> route also answers <code>HEAD</code>.</p>"
        "<table><tr><th>method</th><th>path</th><th>what</th></tr>" + "".join(rows) + "</table>"
    )
    return _page("JSON API", body)
