"""The web page served at ``/``: try the model in a browser (no external assets).

Image models get a canvas to draw on and an upload; tabular models a form built from the
training columns; sequence and text models a paste box. The page shows the prediction, a
bar per class and the saliency overlay returned by ``/explain``.
"""

from __future__ import annotations

import html
import json
from typing import Any

STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0;background:#f6f8fa;color:#1f2328}
main{max-width:960px;margin:0 auto;padding:20px}h1{font-size:24px;margin:4px 0}.muted{color:#59636e}
.panels{display:flex;flex-wrap:wrap;gap:20px}.card{background:#fff;border:1px solid #d0d7de;border-radius:8px;
padding:14px;flex:1 1 380px}canvas{background:#000;border-radius:6px;touch-action:none;cursor:crosshair}
button{font:inherit;padding:6px 14px;margin:6px 6px 0 0;border-radius:6px;border:1px solid #1f6feb;background:#1f6feb;
color:#fff;cursor:pointer}button.secondary{background:#fff;color:#1f6feb}label{display:block;margin:4px 0}
input,select,textarea{font:inherit;padding:3px 6px}textarea{width:100%;height:110px}
.bar{display:flex;align-items:center;margin:2px 0;font-size:13px}.bar span{width:90px;overflow:hidden}
.bar div{height:14px;background:#1f6feb;border-radius:3px;margin-right:6px}#label{font-size:34px;font-weight:700}
#error{color:#cf222e}#overlay{width:200px;image-rendering:pixelated;border-radius:6px;display:none}
"""

SCRIPT = """
const MODEL = %(model)s;
const $ = (id) => document.getElementById(id);
async function post(path, body) {
  const r = await fetch(path, {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body)});
  const j = await r.json();
  if (!r.ok) throw new Error(j.error || r.statusText);
  return j;
}
function show(pred) {
  $('error').textContent = '';
  if (pred.label !== undefined) {
    $('label').textContent = pred.label;
    $('confidence').textContent = 'confidence ' + (100 * pred.confidence).toFixed(1) + '%%';
    const bars = $('bars'); bars.innerHTML = '';
    for (const [name, p] of Object.entries(pred.probabilities)) {
      const row = document.createElement('div'); row.className = 'bar';
      row.innerHTML = '<span></span><div></div><small></small>';
      row.children[0].textContent = name;
      row.children[1].style.width = Math.max(1, 300 * p) + 'px';
      row.children[2].textContent = (100 * p).toFixed(1) + '%%';
      bars.appendChild(row);
    }
  } else {
    $('label').textContent = pred.prediction.toPrecision(4);
  }
}
function showExplanation(e) {
  if (e.overlay_png) { $('overlay').src = 'data:image/png;base64,' + e.overlay_png; $('overlay').style.display = 'block'; }
  if (e.top_features) {
    $('top').innerHTML = '';
    for (const f of e.top_features) {
      const li = document.createElement('li');
      li.textContent = f.feature + ': ' + f.attribution.toPrecision(3);
      $('top').appendChild(li);
    }
  }
  $('explained').textContent = 'saliency (' + e.method + ')';
}
async function run(body) {
  try {
    const p = await post('/predict', body);
    show(p.predictions[0]);
    showExplanation(await post('/explain', body));
  } catch (err) { $('error').textContent = err.message; }
}
"""

IMAGE_INPUT = """
<canvas id=draw width=280 height=280></canvas><br>
<button id=predict>Predict</button><button id=clear class=secondary>Clear</button>
<label>or upload an image <input id=upload type=file accept="image/*"></label>
<script>
const cv = $('draw'), ctx = cv.getContext('2d');
function clearCanvas() { ctx.fillStyle = '#000'; ctx.fillRect(0, 0, cv.width, cv.height); }
clearCanvas();
ctx.strokeStyle = '#fff'; ctx.lineWidth = 26; ctx.lineCap = 'round'; ctx.lineJoin = 'round';
let drawing = false;
function pos(e) { const r = cv.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; }
cv.addEventListener('pointerdown', (e) => { drawing = true; ctx.beginPath(); ctx.moveTo(...pos(e)); });
cv.addEventListener('pointermove', (e) => { if (drawing) { ctx.lineTo(...pos(e)); ctx.stroke(); } });
window.addEventListener('pointerup', () => { drawing = false; });
function small(source) {
  const [c, h, w] = MODEL.shape;
  const out = document.createElement('canvas'); out.width = w; out.height = h;
  const o = out.getContext('2d'); o.imageSmoothingEnabled = true; o.imageSmoothingQuality = 'high';
  o.drawImage(source, 0, 0, w, h);
  return out.toDataURL('image/png');
}
$('predict').onclick = () => run({image: small(cv)});
$('clear').onclick = clearCanvas;
$('upload').onchange = (e) => {
  const img = new Image();
  img.onload = () => { clearCanvas(); ctx.drawImage(img, 0, 0, cv.width, cv.height); run({image: small(img)}); };
  img.src = URL.createObjectURL(e.target.files[0]);
};
</script>
"""


def _table_form(pre: dict[str, Any]) -> str:
    """A field for each column as the training file had it (``input_fields``): numbers start at
    the training median, dates are date pickers, categories a list."""
    from ..data.inputs import input_fields

    kinds = {"number": "number step=any", "date": "date", "datetime": "datetime-local"}
    fields = []
    for f in input_fields(pre):
        name, value = html.escape(f["name"]), html.escape(str(f["default"]))
        if f["type"] == "category":
            opts = "".join(f"<option{' selected' * (v == f['default'])}>{html.escape(v)}</option>" for v in f["choices"])
            fields.append(f'<label>{name} <select name="{name}">{opts}</select></label>')
        elif f["type"] == "text":
            fields.append(f'<label>{name} <textarea name="{name}"></textarea></label>')
        else:
            fields.append(f'<label>{name} <input name="{name}" type={kinds[f["type"]]} value="{value}"></label>')
    return ("<form id=form>" + "".join(fields) + "</form><button id=predict>Predict</button>"
            "<script>$('predict').onclick = () => { const f = {}; for (const el of $('form').elements) "
            "f[el.name] = el.value === '' ? null : el.value; run({features: f}); };</script>")


def _text_box(kind: str) -> str:
    key, hint = ("text", "Paste text") if kind == "tokens" else ("values", "Paste the sequence: numbers separated by commas")
    parse = "v" if kind == "tokens" else "v.split(/[ ,\\n]+/).filter(s => s).map(Number)"
    return (f"<label>{hint}</label><textarea id=box></textarea><button id=predict>Predict</button>"
            f"<script>$('predict').onclick = () => {{ const v = $('box').value; run({{{key}: {parse}}}); }};</script>")


def page(model: Any) -> str:
    """The HTML page for one served model."""
    info = model.info
    meta = {"name": model.name, "shape": list(info.input_shape), "modality": info.modality}
    if info.modality == "image":
        body = IMAGE_INPUT
    elif info.preprocess["kind"] == "table":
        body = _table_form(info.preprocess)
    else:
        body = _text_box(info.modality)
    title = html.escape(model.name)
    return f"""<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{title} - netwright</title>
<style>{STYLE}</style></head><body><main>
<h1>{title}</h1><p class=muted>{html.escape(info.task)} on {html.escape(info.name)} ({html.escape(info.modality)});
engine: {html.escape(model.engine)}. API: <code>POST /predict</code>, <code>POST /explain</code>,
<code>POST /v2/models/{title}/infer</code>, <code>/docs</code>.</p>
<script>{SCRIPT % {"model": json.dumps(meta)}}</script>
<div class=panels><div class=card><h3>Input</h3>{body}</div>
<div class=card><h3>Prediction</h3><div id=label>-</div><div id=confidence class=muted></div><div id=bars></div>
<p id=error></p><h3>Why</h3><img id=overlay alt="saliency overlay"><ol id=top></ol><small id=explained class=muted></small>
</div></div></main></body></html>
"""
