package tb

import (
	"context"
	"encoding/json"
	"maps"
	"sync"
	"time"
)

// AttributeUpdate is a change of shared attributes.
type AttributeUpdate struct {
	// Device is the sub-device the update is for (gateway subscriptions
	// only; empty for a device's own attributes).
	Device  string
	Values  map[string]any // new or changed values
	Deleted []string       // keys deleted on the server
	// Resync is true for updates made from the server's current values after
	// a (re)connect: the first one carries the values at start, later ones
	// what changed while the device was offline.
	Resync bool
}

type attrWatch struct {
	keys map[string]bool // nil = every key
	fn   func(AttributeUpdate)
}

// attrTable keeps the shared-attribute subscriptions of one device and the
// last known values, so that a resync after a reconnect delivers only what
// changed. Pushes and resync results are applied on the owner's serial
// queue, in order.
type attrTable struct {
	devMu  sync.Mutex
	device string // changes when the server renames the device

	mu      sync.Mutex
	watches map[int]*attrWatch
	seq     int
	known   map[string]any    // last known shared attribute values
	pushGen uint64            // pushes applied so far
	keyGen  map[string]uint64 // pushGen of each key's last push
}

func (t *attrTable) name() string {
	t.devMu.Lock()
	defer t.devMu.Unlock()
	return t.device
}

func (t *attrTable) rename(name string) {
	t.devMu.Lock()
	t.device = name
	t.devMu.Unlock()
}

func newAttrTable(device string) *attrTable {
	return &attrTable{device: device, watches: map[int]*attrWatch{}, known: map[string]any{}, keyGen: map[string]uint64{}}
}

func (t *attrTable) add(keys []string, fn func(AttributeUpdate)) (id int) {
	w := &attrWatch{fn: fn}
	if len(keys) > 0 {
		w.keys = map[string]bool{}
		for _, k := range keys {
			w.keys[k] = true
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seq++
	t.watches[t.seq] = w
	return t.seq
}

func (t *attrTable) remove(id int) {
	t.mu.Lock()
	delete(t.watches, id)
	t.mu.Unlock()
}

func (t *attrTable) empty() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.watches) == 0
}

// wanted returns what a resync should ask for: every key (all), or the
// union of the watched keys. For gateways, which cannot ask for "every
// key", the keys known so far are included.
func (t *attrTable) wanted() (startGen uint64, all bool, keys []string, keySet map[string]bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	keySet = map[string]bool{}
	for _, w := range t.watches {
		if w.keys == nil {
			all = true
		}
		for k := range w.keys {
			keySet[k] = true
		}
	}
	if all {
		for k := range t.known {
			keySet[k] = true
		}
	}
	for k := range keySet {
		keys = append(keys, k)
	}
	return t.pushGen, all, keys, keySet
}

// parseUpdate reads a shared-attribute push: {k: v} or {"deleted": [...]}.
func parseUpdate(data map[string]any) AttributeUpdate {
	up := AttributeUpdate{Values: map[string]any{}}
	if del, ok := data["deleted"].([]any); ok {
		for _, k := range del {
			if s, ok := k.(string); ok {
				up.Deleted = append(up.Deleted, s)
			}
		}
		delete(data, "deleted")
	}
	maps.Copy(up.Values, data)
	return up
}

// applyPush records a pushed update and delivers it. Runs on the serial
// queue.
func (t *attrTable) applyPush(up AttributeUpdate, slow time.Duration, report func(error)) {
	t.mu.Lock()
	t.pushGen++
	for k := range up.Values {
		t.keyGen[k] = t.pushGen
	}
	for _, k := range up.Deleted {
		t.keyGen[k] = t.pushGen
	}
	t.mu.Unlock()
	t.deliver(up, slow, report)
}

// applyResync turns the server's current values into the update of what
// changed since they were last known, skipping keys pushed after the
// request was made (the push is newer than the answer). Runs on the serial
// queue.
func (t *attrTable) applyResync(shared map[string]any, startGen uint64, all bool, keySet map[string]bool, slow time.Duration, report func(error)) {
	up := AttributeUpdate{Values: map[string]any{}, Resync: true}
	t.mu.Lock()
	for k, v := range shared {
		if t.keyGen[k] > startGen {
			continue
		}
		if old, ok := t.known[k]; !ok || !jsonEqual(old, v) {
			up.Values[k] = v
		}
	}
	for k := range t.known {
		if _, still := shared[k]; !still && (all || keySet[k]) && t.keyGen[k] <= startGen {
			up.Deleted = append(up.Deleted, k)
		}
	}
	t.mu.Unlock()
	t.deliver(up, slow, report)
}

// deliver records an update as known and hands each watch its part.
func (t *attrTable) deliver(up AttributeUpdate, slow time.Duration, report func(error)) {
	up.Device = t.name()
	t.mu.Lock()
	maps.Copy(t.known, up.Values)
	for _, k := range up.Deleted {
		delete(t.known, k)
	}
	watches := make([]*attrWatch, 0, len(t.watches))
	for _, w := range t.watches {
		watches = append(watches, w)
	}
	t.mu.Unlock()
	for _, w := range watches {
		part := AttributeUpdate{Device: up.Device, Resync: up.Resync}
		if w.keys == nil {
			part.Values, part.Deleted = up.Values, up.Deleted
		} else {
			part.Values = map[string]any{}
			for k, v := range up.Values {
				if w.keys[k] {
					part.Values[k] = v
				}
			}
			for _, k := range up.Deleted {
				if w.keys[k] {
					part.Deleted = append(part.Deleted, k)
				}
			}
		}
		if len(part.Values) == 0 && len(part.Deleted) == 0 {
			continue
		}
		runGuarded("attribute", slow, report, func() { w.fn(part) })
	}
}

// resync requests t's watched shared attributes with fetch (all: every
// key) after a (re)connect and applies the answer on q, in order with the
// pushes, waiting until it is applied. ThingsBoard never replays updates
// made while a device was offline. skip says when there is nothing to ask
// for.
func (c *client) resync(cn *conn, q *serialQueue, t *attrTable, skip func(all bool, keys []string) bool,
	fetch func(ctx context.Context, all bool, keys []string) (map[string]any, error)) {
	startGen, all, keys, keySet := t.wanted()
	if skip(all, keys) {
		return
	}
	ctx, cancel := context.WithTimeout(cn.ctx, c.cfg.RequestTimeout)
	defer cancel()
	shared, err := fetch(ctx, all, keys)
	if err != nil {
		if cn.ctx.Err() == nil {
			c.log.Warn("requesting shared attributes after connect", "device", t.name(), "error", err)
		}
		return
	}
	applied := make(chan struct{})
	q.push(func() {
		defer close(applied)
		t.applyResync(shared, startGen, all, keySet, c.cfg.SlowHandler, c.reportError)
	})
	select {
	case <-applied:
	case <-cn.ctx.Done():
	}
}

func jsonEqual(a, b any) bool {
	ab, err1 := json.Marshal(a)
	bb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ab) == string(bb)
}
