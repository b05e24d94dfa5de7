// @ts-check
// The screenshot the README shows: a small deployed flow with live debug
// messages. It is a test too: an interval inject's messages are converted
// and arrive in the debug sidebar.
import path from 'node:path';
import { editorTest, emptyFlow, env } from './lib/editor.js';

const flow = [
  { ...emptyFlow()[0], label: 'Boiler room' },
  { id: 'tick', type: 'inject', z: 'tab1', name: 'every 0.5 s', x: 150, y: 120, payloadType: 'json', payload: '{"celsius": 21.5}', interval: '500ms', wires: [['toF']] },
  { id: 'toF', type: 'transform', z: 'tab1', name: '°C → °F', x: 380, y: 120, expression: '{"celsius": payload.celsius, "fahrenheit": payload.celsius * 9 / 5 + 32}', wires: [['hot', 'rl']] },
  { id: 'hot', type: 'switch', z: 'tab1', name: 'too warm?', x: 610, y: 80, rules: [{ condition: 'payload.celsius > 20', label: 'warm' }, { condition: 'true', label: 'otherwise' }], mode: 'first', wires: [['warn'], []] },
  { id: 'rl', type: 'rate-limit', z: 'tab1', name: '1 per 2 s', x: 610, y: 180, rate: 1, per: '2s', drop: true, wires: [['log']] },
  { id: 'warn', type: 'debug', z: 'tab1', name: 'warnings', x: 840, y: 80, wires: [] },
  { id: 'log', type: 'debug', z: 'tab1', name: 'readings', x: 840, y: 180, wires: [] },
];

editorTest('a deployed flow with live debug messages (the README screenshot)', async (ed) => {
  await ed.debugMsgs('warn').filter({ hasText: '70.7' }).nth(2).waitFor();
  await ed.debugMsgs('log').filter({ hasText: '70.7' }).first().waitFor();
  await ed.node('rl').locator('.status text', { hasText: 'dropped' }).waitFor();
  await ed.page.screenshot({ path: path.join(env.artifacts, 'editor.png') });
}, { flow });
