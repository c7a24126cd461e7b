//! The inline style sheet and script every HTML report carries (no external
//! resources: the report stays one file that works offline).

/// The style sheet. Paths wrap at their separators (`<wbr>` after each one)
/// and break inside a name only when one name is wider than its box.
pub const CSS: &str = r#"
:root{--fg:#1d232b;--muted:#5f6b7a;--line:#dde2e8;--bg:#f4f6f9;--card:#fff;--exact:#c62828;--near:#e08a00;--none:#8a94a3;--focus:#3b6fb6}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);background:var(--bg)}
header{background:#1f2933;color:#fff;padding:18px 24px}
header h1{margin:0;font-size:20px;font-weight:600}
header p{margin:4px 0 0;color:#c4ccd6;font-size:13px;overflow-wrap:break-word}
main{max-width:2400px;margin:0 auto;padding:20px 24px 48px}
h2{font-size:17px;margin:28px 0 10px}
a{color:#2b5d9e}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 16px;flex:1 1 150px}
.card .n{font-size:24px;font-weight:650}
.card .l{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.panels{display:flex;flex-wrap:wrap;gap:16px;margin-top:16px}
.panel{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 16px;flex:1 1 420px;min-width:0}
.panel h3{margin:0 0 8px;font-size:13px;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
.panel.howto{flex-basis:100%}
.howto p{margin:0;max-width:160ch}
table.kv{border-collapse:collapse;font-size:13px}
table.kv th{text-align:left;font-weight:500;color:var(--muted);padding:2px 14px 2px 0;vertical-align:top;white-space:nowrap}
table.kv td{padding:2px 0;overflow-wrap:break-word;word-break:normal}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px;font-weight:600;white-space:nowrap}
.b-exact{background:var(--exact)}.b-near-duplicate{background:var(--near)}.b-none{background:var(--none)}.b-info{background:var(--focus)}
.tools{position:sticky;top:0;z-index:5;background:var(--bg);display:flex;flex-wrap:wrap;align-items:center;gap:8px 18px;padding:8px 0 10px;color:var(--muted);border-bottom:1px solid var(--line);margin-bottom:12px}
.tools label{cursor:pointer}
.tools input[type=search]{font:inherit;padding:4px 8px;border:1px solid #c3cad3;border-radius:6px;width:22em;max-width:100%}
.tools select{font:inherit;padding:3px 4px}
kbd{font:12px ui-monospace,monospace;border:1px solid #c3cad3;border-bottom-width:2px;border-radius:4px;padding:0 4px;background:#fff}
.note{color:var(--muted);margin:0 0 12px}
.row{display:flex;gap:18px;background:var(--card);border:1px solid var(--line);border-left:5px solid var(--none);border-radius:8px;padding:14px;margin:0 0 14px;scroll-margin-top:64px}
.row.v-exact{border-left-color:var(--exact)}.row.v-near-duplicate{border-left-color:var(--near)}
.item.cur{outline:3px solid var(--focus);outline-offset:1px}
.gen{width:200px;flex:none;min-width:0}
.matches{display:flex;flex-wrap:wrap;gap:16px;flex:1;min-width:0}
.match{flex:1 1 520px;display:flex;flex-wrap:wrap;gap:8px 16px;border-left:1px solid var(--line);padding-left:14px;min-width:0}
.match .info{flex:1 1 220px;min-width:0}
.pair{display:flex;gap:8px;flex:none}
.runners{flex:0 1 340px;font-size:12px;color:var(--muted);min-width:0}
.runners ol{margin:2px 0 0;padding-left:20px}
figure{margin:0}
.boxed{position:relative;width:max-content}
.boxed .region{position:absolute;box-sizing:border-box;border:2px solid #e5484d;box-shadow:0 0 0 1px #fff;pointer-events:none}
figcaption{font-size:11px;color:var(--muted);margin-top:2px;max-width:160px}
a.full{display:block;cursor:zoom-in;width:max-content}
img.t{display:block;max-width:160px;max-height:160px;border-radius:4px;background:#eee;image-rendering:auto}
.noimg{width:160px;height:100px;display:flex;align-items:center;justify-content:center;text-align:center;font-size:11px;color:var(--muted);background:#eceff3;border-radius:4px;padding:6px}
.path{font-size:12px;color:var(--muted);overflow-wrap:break-word;word-break:normal;margin:4px 0}
.score{font-size:18px;font-weight:650;margin-left:6px}
.hist{width:100%;height:auto;max-height:260px}
table.list{border-collapse:collapse;width:100%;background:var(--card);border:1px solid var(--line);font-size:13px}
table.list th,table.list td{padding:4px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
table.list td.p{overflow-wrap:break-word;word-break:normal}
table.list th{background:#eef1f5;font-weight:600}
.members{display:flex;flex-wrap:wrap;gap:14px;flex:1;min-width:0}
.member{width:170px}
details{margin-top:18px}
#lb{position:fixed;inset:0;z-index:20;background:rgba(12,16,22,.9);display:none;flex-direction:column;align-items:center;justify-content:center;gap:10px;padding:20px;cursor:zoom-out}
#lb.open{display:flex}
#lb img{max-width:96vw;max-height:84vh;object-fit:contain;background:#fff;min-width:320px}
#lb .cap{color:#e6eaef;font-size:13px;max-width:96vw;overflow-wrap:break-word;text-align:center}
#lb a{color:#9cc3ff}
#selftest{display:none}
footer{color:var(--muted);font-size:12px;margin-top:32px}
@media (max-width:700px){.row{flex-direction:column}.gen{width:auto}}
"#;

/// The page's behaviour: filter by verdict and by text, sort, j/k between
/// rows, a lightbox for any thumbnail (the full image through its file
/// link where the browser can reach it, else the thumbnail), then the
/// self-test line read by tests/html_report.rs: thumbnails, decoded
/// thumbnails, rows, text rows, near-miss rows.
pub const JS: &str = r#"
(function(){
  var $=function(q,r){return Array.prototype.slice.call((r||document).querySelectorAll(q));};
  var boxes=$('input[data-filter]'),search=document.getElementById('search'),sort=document.getElementById('sort');
  var items=$('.item'),cur=null;
  function apply(){
    var on={};boxes.forEach(function(b){on[b.getAttribute('data-filter')]=b.checked;});
    var q=search?search.value.trim().toLowerCase():'',shown=0;
    items.forEach(function(e){
      var v=e.getAttribute('data-verdict');
      var vis=(!v||!(v in on)||on[v])&&(!q||(e.getAttribute('data-text')||'').indexOf(q)>=0);
      e.hidden=!vis;if(vis)shown++;
    });
    if(cur&&cur.hidden)setCur(null);
    var c=document.getElementById('shown');if(c)c.textContent=shown+' of '+items.length+' shown';
  }
  function order(){
    var how=sort?sort.value:'score-desc';
    $('.rows').forEach(function(box){
      var rows=$('.item',box).filter(function(e){return e.parentNode===box;});
      rows.sort(function(a,b){
        var sa=+a.getAttribute('data-score'),sb=+b.getAttribute('data-score');
        var na=a.getAttribute('data-name'),nb=b.getAttribute('data-name');
        if(how==='name')return na<nb?-1:na>nb?1:0;
        var d=how==='score-asc'?sa-sb:sb-sa;return d||(na<nb?-1:na>nb?1:0);
      });
      rows.forEach(function(e){box.appendChild(e);});
    });
  }
  function setCur(e){
    if(cur)cur.classList.remove('cur');cur=e;
    if(e){e.classList.add('cur');if(e.scrollIntoView)e.scrollIntoView({block:'nearest'});}
  }
  function step(d){
    var vis=$('.item').filter(function(e){return !e.hidden;});if(!vis.length)return;
    var i=vis.indexOf(cur);i=i<0?(d>0?0:vis.length-1):Math.max(0,Math.min(vis.length-1,i+d));
    setCur(vis[i]);
  }
  var lb=document.getElementById('lb'),big=lb.querySelector('img'),cap=lb.querySelector('.cap'),open=lb.querySelector('a');
  function show(a){
    var t=a.querySelector('img'),href=a.getAttribute('href'),name=a.getAttribute('data-path')||'';
    big.onerror=null;big.src=t?t.src:'';cap.textContent=name;open.hidden=!href;
    if(href){
      open.href=href;
      big.onerror=function(){big.onerror=null;big.src=t?t.src:'';cap.textContent=name+' (thumbnail: the full image cannot be opened from here)';};
      big.src=href;
    }
    lb.classList.add('open');
  }
  function hide(){lb.classList.remove('open');big.onerror=null;big.removeAttribute('src');}
  document.addEventListener('click',function(ev){
    var a=ev.target.closest?ev.target.closest('a.full'):null;
    if(a){ev.preventDefault();var it=a.closest('.item');if(it)setCur(it);show(a);return;}
    if(lb.contains(ev.target)&&ev.target!==open)hide();
  });
  document.addEventListener('keydown',function(ev){
    if(ev.ctrlKey||ev.metaKey||ev.altKey)return;
    if(lb.classList.contains('open')){if(ev.key==='Escape'){hide();ev.preventDefault();}return;}
    var tag=ev.target.tagName;if(tag==='INPUT'||tag==='SELECT'||tag==='TEXTAREA'){if(ev.key==='Escape')ev.target.blur();return;}
    if(ev.key==='j'){step(1);ev.preventDefault();}
    else if(ev.key==='k'){step(-1);ev.preventDefault();}
    else if((ev.key==='Enter'||ev.key==='o')&&cur){var a=cur.querySelector('a.full');if(a){show(a);ev.preventDefault();}}
    else if(ev.key==='/'&&search){search.focus();ev.preventDefault();}
  });
  boxes.forEach(function(b){b.addEventListener('change',apply);});
  if(search)search.addEventListener('input',apply);
  if(sort)sort.addEventListener('change',order);
  order();apply();
  window.addEventListener('load',function(){
    var imgs=$('img.t'),ok=0;
    imgs.forEach(function(i){if(i.complete&&i.naturalWidth>0)ok++;});
    document.getElementById('selftest').textContent='images='+imgs.length+' decoded='+ok+
      ' rows='+$('.row:not(.nearmiss)').length+' textrows='+$('tr.textrow:not(.nearmiss)').length+
      ' nearmisses='+$('.nearmiss').length;
  });
})();
"#;
