// @ts-check
// The screenshot the README shows: a small deployed flow with live debug
// messages. It is a test too: an interval inject's messages are converted
// and arrive in the debug sidebar.
import path from 'node:path';
import { editorTest, emptyFlow, env } from './lib/editor.js';

const flow = [
  { ...emptyFlow()[0], label: 'Boiler room' },
  { id: 'tick', type: 'inject', z: 'tab1', name: 'every 0.5 s', x: 120, y: 130, payloadType: 'json', payload: '{"celsius": 21.5}', interval: '500ms', wires: [['toF']] },
  { id: 'toF', type: 'transform', z: 'tab1', name: '°C → °F', x: 300, y: 130, expression: '{"celsius": payload.celsius, "fahrenheit": payload.celsius * 9 / 5 + 32}', wires: [['hot', 'rl']] },
  { id: 'hot', type: 'switch', z: 'tab1', name: 'too warm?', x: 490, y: 80, rules: [{ condition: 'payload.celsius > 20', label: 'warm' }, { condition: 'true', label: 'otherwise' }], mode: 'first', wires: [['warn'], []] },
  { id: 'rl', type: 'rate-limit', z: 'tab1', name: '1 per 2 s', x: 490, y: 190, rate: 1, per: '2s', drop: true, wires: [['log']] },
  { id: 'warn', type: 'debug', z: 'tab1', name: 'warnings', x: 680, y: 80, wires: [] },
  { id: 'log', type: 'debug', z: 'tab1', name: 'readings', x: 680, y: 190, wires: [] },
];

editorTest('a deployed flow with live debug messages (the README screenshot)', async (ed) => {
  await ed.debugMsgs('warn').filter({ hasText: '70.7' }).nth(2).waitFor();
  await ed.debugMsgs('log').filter({ hasText: '70.7' }).first().waitFor();
  await ed.node('rl').locator('.status text', { hasText: 'dropped' }).waitFor();
  await ed.page.screenshot({ path: path.join(env.artifacts, 'editor.png') });
}, { flow });
