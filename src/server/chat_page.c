/* The chat page at GET /: one static HTML page, no external assets, that
 * keeps the conversation in the browser and streams each reply from
 * /v1/chat/completions (server-sent events read with fetch). An API key, if
 * the server has one, is typed into the page (a page load cannot send a
 * bearer token, so / itself is served without one; it holds no data). */
#include <string.h>

#include "server/server.h"

static const char chat_page_html[] =
    "<!doctype html>\n"
    "<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>llmrt chat</title>\n"
    "<style>\n"
    "body{font:15px/1.45 system-ui,sans-serif;margin:0;background:#f6f6f4;color:#222}\n"
    "header{padding:10px 16px;background:#263238;color:#eee;display:flex;gap:12px;align-items:center}\n"
    "header b{font-size:16px}header input{flex:0 0 14em}\n"
    "#log{max-width:820px;margin:0 auto;padding:16px 16px 110px}\n"
    ".msg{white-space:pre-wrap;margin:10px 0;padding:10px 12px;border-radius:8px}\n"
    ".user{background:#dcedc8;margin-left:15%}.assistant{background:#fff;margin-right:15%;border:1px solid #ddd}\n"
    ".error{background:#ffcdd2}\n"
    "form{position:fixed;bottom:0;left:0;right:0;background:#eceff1;padding:12px;display:flex;gap:8px;"
    "justify-content:center}\n"
    "textarea{width:min(680px,70vw);height:3.2em;font:inherit}button{font:inherit;padding:0 18px}\n"
    "</style></head><body>\n"
    "<header><b>llmrt</b><span id=\"model\"></span><span style=\"flex:1\"></span>\n"
    "<label>max tokens <input id=\"max\" type=\"number\" value=\"64\" min=\"1\" style=\"width:5em\"></label>\n"
    "<input id=\"key\" type=\"password\" placeholder=\"API key (if any)\"></header>\n"
    "<div id=\"log\"></div>\n"
    "<form id=\"form\"><textarea id=\"input\" placeholder=\"Message (Enter sends, Shift+Enter: new line)\">"
    "</textarea><button id=\"send\">Send</button></form>\n"
    "<script>\n"
    "const log=document.getElementById('log'),input=document.getElementById('input'),form=document.getElementById('form');\n"
    "const history=[];let model=null;\n"
    "function headers(){const h={'Content-Type':'application/json'};const k=document.getElementById('key').value;\n"
    " if(k)h['Authorization']='Bearer '+k;return h}\n"
    "function add(role,text){const d=document.createElement('div');d.className='msg '+role;d.textContent=text;\n"
    " log.appendChild(d);window.scrollTo(0,document.body.scrollHeight);return d}\n"
    "async function loadModel(){try{const r=await fetch('/v1/models',{headers:headers()});const j=await r.json();\n"
    " model=j.data[0].id;document.getElementById('model').textContent=model}catch(e){}}\n"
    "async function send(text){\n"
    " history.push({role:'user',content:text});add('user',text);\n"
    " const out=add('assistant','');out.id='reply-'+history.length;let reply='';\n"
    " document.getElementById('send').disabled=true;\n"
    " try{\n"
    "  const body={messages:history,stream:true,max_tokens:parseInt(document.getElementById('max').value)||64};\n"
    "  if(model)body.model=model;\n"
    "  const r=await fetch('/v1/chat/completions',{method:'POST',headers:headers(),body:JSON.stringify(body)});\n"
    "  if(!r.ok){const j=await r.json().catch(()=>({}));throw new Error((j.error&&j.error.message)||r.statusText)}\n"
    "  const reader=r.body.getReader(),dec=new TextDecoder();let buf='';\n"
    "  for(;;){const {done,value}=await reader.read();if(done)break;buf+=dec.decode(value,{stream:true});\n"
    "   let i;while((i=buf.indexOf('\\n\\n'))>=0){const ev=buf.slice(0,i);buf=buf.slice(i+2);\n"
    "    if(!ev.startsWith('data: '))continue;const data=ev.slice(6);if(data==='[DONE]')continue;\n"
    "    const j=JSON.parse(data);if(j.error)throw new Error(j.error.message);\n"
    "    const c=j.choices&&j.choices[0];if(c&&c.delta&&c.delta.content){reply+=c.delta.content;out.textContent=reply}}}\n"
    "  out.dataset.done='1';history.push({role:'assistant',content:reply});\n"
    " }catch(e){out.className='msg error';out.textContent='error: '+e.message;out.dataset.done='1'}\n"
    " document.getElementById('send').disabled=false}\n"
    "form.addEventListener('submit',e=>{e.preventDefault();const t=input.value.trim();if(!t)return;input.value='';send(t)});\n"
    "input.addEventListener('keydown',e=>{if(e.key==='Enter'&&!e.shiftKey){e.preventDefault();form.requestSubmit()}});\n"
    "loadModel();\n"
    "const auto=new URLSearchParams(location.search).get('say');if(auto)loadModel().then(()=>send(auto));\n"
    "</script></body></html>\n";

void srv_chat_page(srv_http_request *req, srv_reply *reply) {
    (void)req;
    srv_reply_text(reply, 200, "text/html; charset=utf-8", chat_page_html, sizeof chat_page_html - 1);
}
