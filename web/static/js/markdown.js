// A small Markdown renderer for node help: paragraphs, headings, lists,
// fenced code, tables, `code`, **bold**, *emphasis* and [links](https://…).
// It builds DOM nodes (text is never parsed as HTML), so help text cannot
// inject markup; links open only http(s) addresses.

import { h } from './dom.js';

const INLINE = [
  { re: /`([^`]+)`/, make: (m) => h('code', { text: m[1] }) },
  { re: /\*\*([^*]+(?:\*(?!\*)[^*]*)*)\*\*/, make: (m) => h('strong', null, inline(m[1])) },
  { re: /(?<![\w*])\*(?![\s*])([^*]+?)(?<!\s)\*(?![\w*])/, make: (m) => h('em', null, inline(m[1])) },
  {
    re: /\[([^\]]+)\]\(([^)\s]+)\)/,
    make: (m) => (/^https?:\/\//i.test(m[2]) ? h('a', { href: m[2], target: '_blank', rel: 'noopener noreferrer' }, inline(m[1])) : h('span', null, inline(m[1]))),
  },
  { re: /(?<![("\w])(https?:\/\/[^\s)<>"]+[^\s)<>".,;:])/, make: (m) => h('a', { href: m[1], target: '_blank', rel: 'noopener noreferrer', text: m[1] }) },
];

/** Inline Markdown of one text run as an array of DOM nodes. */
export function inline(text) {
  const out = [];
  let rest = text;
  while (rest) {
    let best = null;
    for (const tok of INLINE) {
      const m = tok.re.exec(rest);
      if (m && (!best || m.index < best.m.index)) best = { m, tok };
    }
    if (!best) {
      out.push(document.createTextNode(rest));
      break;
    }
    if (best.m.index > 0) out.push(document.createTextNode(rest.slice(0, best.m.index)));
    out.push(best.tok.make(best.m));
    rest = rest.slice(best.m.index + best.m[0].length);
  }
  return out;
}

function cells(line) {
  return line
    .trim()
    .replace(/^\|/, '')
    .replace(/\|$/, '')
    .split('|')
    .map((c) => c.trim());
}

/** Renders Markdown text into a document fragment. */
export function markdown(text) {
  const frag = document.createDocumentFragment();
  const lines = String(text || '').replace(/\r\n?/g, '\n').split('\n');
  let i = 0;
  let para = [];
  const flush = () => {
    if (para.length) frag.append(h('p', null, inline(para.join(' '))));
    para = [];
  };
  while (i < lines.length) {
    const line = lines[i];
    if (/^\s*```/.test(line)) {
      flush();
      const body = [];
      i++;
      while (i < lines.length && !/^\s*```/.test(lines[i])) body.push(lines[i++]);
      i++;
      frag.append(h('pre', null, h('code', { text: body.join('\n') })));
      continue;
    }
    const head = /^(#{1,4})\s+(.*)$/.exec(line);
    if (head) {
      flush();
      frag.append(h(`h${Math.min(6, head[1].length + 2)}`, null, inline(head[2])));
      i++;
      continue;
    }
    const item = /^\s*([-*]|\d+\.)\s+(.*)$/.exec(line);
    if (item) {
      flush();
      const ordered = /\d/.test(item[1]);
      const list = h(ordered ? 'ol' : 'ul');
      while (i < lines.length) {
        const m = /^\s*([-*]|\d+\.)\s+(.*)$/.exec(lines[i]);
        if (!m || /\d/.test(m[1]) !== ordered) break;
        const parts = [m[2]];
        i++;
        while (i < lines.length && /^\s{2,}\S/.test(lines[i]) && !/^\s*([-*]|\d+\.)\s+/.test(lines[i])) parts.push(lines[i++].trim());
        list.append(h('li', null, inline(parts.join(' '))));
      }
      frag.append(list);
      continue;
    }
    if (/^\s*\|.*\|\s*$/.test(line) && i + 1 < lines.length && /^\s*\|?[\s:|-]+\|?\s*$/.test(lines[i + 1])) {
      flush();
      const headCells = cells(line);
      i += 2;
      const rows = [];
      while (i < lines.length && /^\s*\|.*\|\s*$/.test(lines[i])) rows.push(cells(lines[i++]));
      frag.append(
        h(
          'table',
          { class: 'md-table' },
          h('thead', null, h('tr', null, headCells.map((c) => h('th', null, inline(c))))),
          h('tbody', null, rows.map((r) => h('tr', null, r.map((c) => h('td', null, inline(c)))))),
        ),
      );
      continue;
    }
    if (!line.trim()) {
      flush();
      i++;
      continue;
    }
    para.push(line.trim());
    i++;
  }
  flush();
  return frag;
}
