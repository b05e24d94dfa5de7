// Node icons: small line drawings in a 16×16 box, by the type's `icon` name.

import { s } from './dom.js';

const P = (d) => ['path', { d }];

const ICONS = {
  inject: [P('M2 8h8'), P('M7 4.5 10.5 8 7 11.5'), P('M13.5 3v10')],
  debug: [P('M3 4h10'), P('M3 8h10'), P('M3 12h6.5')],
  function: [P('M10.8 2.5c-1.8 0-2.6.9-2.9 2.6L6.5 11.6c-.3 1.6-1.1 2.2-2.7 2.2'), P('M4.8 6.5h5.8')],
  switch: [P('M1.5 8h4'), P('M5.5 8c2.2 0 2.2-4.5 5-4.5h3.5'), P('M5.5 8c2.2 0 2.2 4.5 5 4.5h3.5')],
  timer: [['circle', { cx: 8, cy: 8.5, r: 5.5 }], P('M8 5.5v3l2 1.5'), P('M6.5 1.5h3')],
  alert: [P('M8 2.2 14.2 13.5H1.8Z'), P('M8 6.4v3.6'), P('M8 11.7v.3')],
  status: [P('M1.5 8.5h3l1.8-4.5 3 8.5 1.8-4h3.4')],
  modbus: [P('M4.5 4.5h7v7h-7Z'), P('M6.5 2v2.5M9.5 2v2.5M6.5 11.5V14M9.5 11.5V14M2 6.5h2.5M2 9.5h2.5M11.5 6.5H14M11.5 9.5H14')],
  thingsboard: [P('M4.6 12.5h6.9a2.9 2.9 0 0 0 .4-5.8 3.9 3.9 0 0 0-7.5 1 2.4 2.4 0 0 0 .2 4.8Z')],
  comment: [P('M2.5 3.5h11v7h-6l-3 2.5v-2.5h-2Z')],
};

const FALLBACK = [['circle', { cx: 8, cy: 8, r: 3.5 }]];

/** An SVG group drawing the icon, placed with its top-left at (x, y). */
export function iconGlyph(name, x, y, size = 16) {
  const parts = ICONS[name] || FALLBACK;
  const k = size / 16;
  return s('g', { class: 'node-icon', transform: `translate(${x} ${y}) scale(${k})` }, parts.map(([tag, attrs]) => s(tag, attrs)));
}

/** An inline SVG of the icon for HTML (palette entries). */
export function iconSvg(name) {
  const parts = ICONS[name] || FALLBACK;
  return s('svg', { class: 'icon', viewBox: '0 0 16 16', width: 16, height: 16, 'aria-hidden': 'true' }, parts.map(([tag, attrs]) => s(tag, attrs)));
}
