/** The wizard's and dashboard's pages: escaped HTML, one layout, one stylesheet, no script. */
export { escapeHtml, html, raw, SafeHtml } from './html.ts';
export { ASSET_PATHS, errorBox, page, type PageOptions } from './layout.ts';
export { webAssetRoutes } from './asset-routes.ts';
export { sendStreamed, STREAM_MARK } from './streamed-page.ts';
