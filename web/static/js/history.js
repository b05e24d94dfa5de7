// Undo and redo of model changes. Each entry holds the before and after
// state of the nodes one change touched; undo restores "before", redo
// restores "after". The tab that was active is kept so undo shows the
// change where it happened.

import { createEmitter } from './events.js';

const LIMIT = 200;

export function createHistory(model, { currentTab, showTab }) {
  const emitter = createEmitter();
  let undoStack = [];
  let redoStack = [];
  let restoring = false;

  model.on('commit', (entry) => {
    if (restoring) return;
    entry.tab = currentTab();
    undoStack.push(entry);
    if (undoStack.length > LIMIT) undoStack.shift();
    redoStack = [];
    emitter.emit('change');
  });

  function apply(entry, states, tabs) {
    restoring = true;
    try {
      model.restore(states, tabs);
    } finally {
      restoring = false;
    }
    if (entry.tab && model.has(entry.tab)) showTab(entry.tab);
    emitter.emit('change');
  }

  return {
    on: emitter.on,
    undo() {
      const e = undoStack.pop();
      if (!e) return null;
      redoStack.push(e);
      apply(e, e.before, e.tabsBefore);
      return e;
    },
    redo() {
      const e = redoStack.pop();
      if (!e) return null;
      undoStack.push(e);
      apply(e, e.after, e.tabsAfter);
      return e;
    },
    clear() {
      undoStack = [];
      redoStack = [];
      emitter.emit('change');
    },
    get canUndo() {
      return undoStack.length > 0;
    },
    get canRedo() {
      return redoStack.length > 0;
    },
  };
}
