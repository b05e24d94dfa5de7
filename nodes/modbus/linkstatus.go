package modbus

import (
	"context"
	"fmt"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/modbus"
)

// linkStatus is what the on-demand nodes (modbus-read, modbus-write)
// share: their connection and a status that follows the link's outages
// and returns as well as their own requests' results.
type linkStatus struct {
	nc   *engine.NodeContext
	conn *Connection

	unwatch func()
}

// Start follows the link's state for the status.
func (l *linkStatus) Start(context.Context) error {
	l.unwatch = watchLink(l.conn, l.nc.ShowStatus)
	return nil
}

// Stop stops following the link.
func (l *linkStatus) Stop(context.Context) error {
	if l.unwatch != nil {
		l.unwatch()
		l.unwatch = nil
	}
	return nil
}

// watchLink shows the link's outages (and its return) in a node's status.
func watchLink(conn *Connection, set func(engine.Status)) func() {
	bus, err := conn.Bus()
	if err != nil {
		return nil
	}
	return bus.Watch(func(up bool, err error) {
		if up {
			set(engine.StatusConnected)
		} else if err != nil {
			set(engine.StatusError(err))
		}
	})
}

// checkFixedKey checks that a node's fixed key (when set) names a row.
func checkFixedKey(regs []modbus.Register, key string) error {
	if key == "" {
		return nil
	}
	for _, r := range regs {
		if r.Key == key {
			return nil
		}
	}
	return &engine.FieldError{Field: "key", Message: fmt.Sprintf("no row has the key %q", key)}
}
