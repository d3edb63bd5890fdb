/**
 * The one stylesheet of the wizard and dashboard, served at ASSET_PATHS.stylesheet. Kept
 * in code so the agent stays one bundled file. Phone first (360 px), larger screens get a
 * wider column; colours meet WCAG AA contrast; focus is always visible.
 */
export const STYLESHEET = `
*,*::before,*::after{box-sizing:border-box}
html{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif;font-size:16px;line-height:1.5;color:#1b1f24;background:#f5f6f8}
body{margin:0}
a{color:#0b57b8}
a:focus-visible,button:focus-visible,input:focus-visible,select:focus-visible,summary:focus-visible{outline:3px solid #f0a000;outline-offset:2px}
.skip{position:absolute;left:-999px}.skip:focus{left:8px;top:8px;background:#fff;padding:8px;z-index:2}
header.top{background:#17324d;color:#fff;padding:12px 16px;display:flex;flex-wrap:wrap;gap:8px 16px;align-items:center}
header.top a{color:#fff}
header.top .brand{font-weight:700;font-size:1.15rem;margin-right:auto;text-decoration:none}
nav.main ul{list-style:none;margin:0;padding:0;display:flex;flex-wrap:wrap;gap:4px 14px}
main{max-width:46rem;margin:0 auto;padding:16px}
h1{font-size:1.5rem;margin:8px 0 16px}
h2{font-size:1.2rem;margin:24px 0 8px}
.card{background:#fff;border:1px solid #d5d9e0;border-radius:8px;padding:16px;margin:0 0 16px}
label{display:block;font-weight:600;margin:12px 0 4px}
.hint{display:block;font-weight:400;color:#4a5563;font-size:.9rem}
input,select{width:100%;font:inherit;padding:10px;border:1px solid #8a94a3;border-radius:6px;background:#fff;color:inherit}
button,.button{display:inline-block;font:inherit;font-weight:600;padding:10px 18px;margin:16px 8px 0 0;border-radius:6px;border:1px solid #0b57b8;background:#0b57b8;color:#fff;cursor:pointer;text-decoration:none}
button.secondary,.button.secondary{background:#fff;color:#0b57b8}
button.danger{background:#b3261e;border-color:#b3261e}
.error{border-left:4px solid #b3261e;background:#fdecea;padding:10px 12px;margin:0 0 16px}
.notice{border-left:4px solid #0b57b8;background:#e8f0fb;padding:10px 12px;margin:0 0 16px}
.ok{color:#1d6b32;font-weight:600}.bad{color:#b3261e;font-weight:600}.warn{color:#8a5300;font-weight:600}
ol.steps{list-style:none;padding:0;margin:0 0 16px;display:flex;flex-wrap:wrap;gap:4px 12px;font-size:.9rem;color:#4a5563}
ol.steps li[aria-current="step"]{color:#17324d;font-weight:700}
ol.steps li.done::before{content:"\\2713 "}
table{width:100%;border-collapse:collapse}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e3e6eb;vertical-align:top}
.secret{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:1.1rem;letter-spacing:.05em;background:#fff8e1;padding:2px 6px;border-radius:4px}
.qr svg{width:160px;height:160px}
.grid{display:grid;gap:12px;grid-template-columns:1fr}
@media (min-width:700px){main{padding:24px}.grid{grid-template-columns:1fr 1fr}}
@media print{header.top,nav,form,.no-print{display:none}body,html{background:#fff}}
/* dashboard */
.field-error{display:block;color:#b3261e;font-weight:600;margin:0 0 4px}
input[aria-invalid="true"]{border:2px solid #b3261e}
dl.facts{margin:0 0 8px}dl.facts dt{font-weight:600}dl.facts dd{margin:0 0 6px;overflow-wrap:anywhere}
ul.services,ul.members,ul.sessions,ul.accounts,ol.audit{list-style:none;padding:0;margin:0}
ul.services>li{border-top:1px solid #e3e6eb;padding:12px 0}
ul.services h3,ul.members h3{margin:0 0 6px;font-size:1.05rem}
ul.sessions>li,ul.accounts>li,ol.audit>li{padding:6px 0;border-bottom:1px solid #e3e6eb}
ol.compact{margin:4px 0;padding-left:1.4rem}
code{overflow-wrap:anywhere}
.qr-pair{display:flex;flex-wrap:wrap;gap:12px}
figure.qr{margin:0;text-align:center}figure.qr figcaption{font-size:.85rem;color:#4a5563}
meter{width:100%;height:1.2rem}
dl.inline{display:flex;flex-wrap:wrap;gap:2px 18px;margin:0 0 6px}dl.inline div{display:flex;gap:6px}dl.inline dt{font-weight:600}dl.inline dd{margin:0}
td.size,th.size{white-space:nowrap;text-align:right}
.qr-pair .qr svg{width:128px;height:128px}
.placeholder{border-style:dashed}
.progress:has(~ .done){display:none}
@media (min-width:480px){dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px}dl.facts dd{margin:0}.qr-pair .qr svg{width:160px;height:160px}}
@media print{.sheet{break-inside:avoid;border-color:#000}.progress{display:none}}
`;
