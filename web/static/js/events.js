// A tiny publish/subscribe emitter.

export function createEmitter() {
  const handlers = new Map();
  return {
    on(event, fn) {
      if (!handlers.has(event)) handlers.set(event, new Set());
      handlers.get(event).add(fn);
      return () => handlers.get(event)?.delete(fn);
    },
    emit(event, ...args) {
      for (const fn of [...(handlers.get(event) || [])]) {
        try {
          fn(...args);
        } catch (err) {
          // A failing listener must not stop the others; report it once.
          setTimeout(() => {
            throw err;
          });
        }
      }
    },
  };
}

/** The editor-wide bus: selection, tab switches, edit requests, help. */
export const bus = createEmitter();
