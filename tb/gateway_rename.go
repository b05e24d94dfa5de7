package tb

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
)

// Service RPCs ThingsBoard sends a gateway on its own RPC topic when a
// device it last connected is renamed or deleted.
const (
	methodDeviceRenamed = "gateway_device_renamed"
	methodDeviceDeleted = "gateway_device_deleted"
)

// OnDeviceRenamed registers fn for ThingsBoard's notice that a sub-device
// this gateway connected was renamed. From then on the gateway follows the
// rename: everything sent, requested or subscribed under the old name goes
// to the new one (otherwise ThingsBoard would create a new device under
// the old name). fn runs on its own goroutine. The returned function
// unregisters fn.
func (g *Gateway) OnDeviceRenamed(fn func(oldName, newName string)) (remove func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cbSeq++
	id := g.cbSeq
	g.onRename[id] = fn
	return func() {
		g.mu.Lock()
		delete(g.onRename, id)
		g.mu.Unlock()
	}
}

// OnDeviceDeleted registers fn for ThingsBoard's notice that a sub-device
// this gateway connected was deleted. The gateway stops connecting it
// after a reconnect (data sent for it later creates it again). fn runs on
// its own goroutine. The returned function unregisters fn.
func (g *Gateway) OnDeviceDeleted(fn func(name string)) (remove func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cbSeq++
	id := g.cbSeq
	g.onDelete[id] = fn
	return func() {
		g.mu.Lock()
		delete(g.onDelete, id)
		g.mu.Unlock()
	}
}

// Resolve returns the name a sub-device has now: name itself unless the
// server renamed it.
func (g *Gateway) Resolve(name string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.resolveLocked(name)
}

func (g *Gateway) resolveLocked(name string) string {
	for i := 0; i < 16; i++ { // a chain of renames, bounded
		n, ok := g.renamed[name]
		if !ok {
			break
		}
		name = n
	}
	return name
}

func (g *Gateway) onServiceRPC(method string, params json.RawMessage) bool {
	switch method {
	case methodDeviceRenamed:
		var m map[string]string
		if err := json.Unmarshal(params, &m); err != nil || len(m) != 1 {
			g.c.reportError(fmt.Errorf("tb: malformed %s params %q", method, truncate(params)))
			return true
		}
		for oldName, newName := range m {
			g.renameDevice(oldName, newName)
		}
		return true
	case methodDeviceDeleted:
		var name string
		if err := json.Unmarshal(params, &name); err != nil || name == "" {
			g.c.reportError(fmt.Errorf("tb: malformed %s params %q", method, truncate(params)))
			return true
		}
		g.deleteDevice(name)
		return true
	}
	return false
}

func (g *Gateway) renameDevice(oldName, newName string) {
	if oldName == "" || newName == "" || oldName == newName {
		return
	}
	g.mu.Lock()
	if len(g.renamed) > 10000 {
		clear(g.renamed)
	}
	g.renamed[oldName] = newName
	delete(g.renamed, newName)
	if typ, ok := g.devices[oldName]; ok {
		delete(g.devices, oldName)
		g.devices[newName] = typ
	}
	if t, ok := g.attrs[oldName]; ok {
		delete(g.attrs, oldName)
		t.rename(newName)
		g.attrs[newName] = t
	}
	if h, ok := g.handlers[oldName]; ok {
		delete(g.handlers, oldName)
		if _, taken := g.handlers[newName]; !taken {
			g.handlers[newName] = h
		}
	}
	fns := slices.Collect(maps.Values(g.onRename))
	g.mu.Unlock()
	g.c.log.Info("sub-device renamed by the server; following it", "old", oldName, "new", newName)
	for _, fn := range fns {
		go runGuarded("device renamed", g.c.cfg.SlowHandler, g.c.reportError, func() { fn(oldName, newName) })
	}
}

func (g *Gateway) deleteDevice(name string) {
	g.mu.Lock()
	delete(g.devices, name)
	for o, n := range g.renamed {
		if n == name {
			delete(g.renamed, o)
		}
	}
	fns := slices.Collect(maps.Values(g.onDelete))
	g.mu.Unlock()
	g.c.log.Info("sub-device deleted by the server", "device", name)
	for _, fn := range fns {
		go runGuarded("device deleted", g.c.cfg.SlowHandler, g.c.reportError, func() { fn(name) })
	}
}
